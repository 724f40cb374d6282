package model

import (
	"encoding/json"
	"slices"
	"sort"
)

// Action is what reconciling a desired container against the current one
// requires.
type Action int

// Update actions, from no change to a new container.
const (
	ActionCheck    Action = iota // only make sure it runs
	ActionUpdate                 // runtime update of resources or restart policy
	ActionRecreate               // a new container replaces the old one
	ActionCreate                 // nothing to compare with
)

func (a Action) String() string {
	return [...]string{"check", "update", "recreate", "create"}[a]
}

// DetermineUpdateAction compares desired with current (nil when none has
// the same name). host_name and domain_name are not compared, as upstream.
// Both must have had FillDefaults applied.
func DetermineUpdateAction(current, desired *Container) Action {
	if current == nil {
		return ActionCreate
	}
	ch, dh := current.HostConfig, desired.HostConfig
	if current.Image.Name != desired.Image.Name ||
		!sameSet(current.Mounts, desired.Mounts) ||
		!sameSet(env(current), env(desired)) ||
		!slices.Equal(cmd(current), cmd(desired)) ||
		current.IOConfig.OpenStdin != desired.IOConfig.OpenStdin ||
		current.IOConfig.Tty != desired.IOConfig.Tty ||
		ch.Privileged != dh.Privileged || ch.NetworkMode != dh.NetworkMode ||
		!sameSet(ch.Devices, dh.Devices) || !sameSet(ch.ExtraHosts, dh.ExtraHosts) ||
		!sameSet(ch.ExtraCapabilities, dh.ExtraCapabilities) ||
		!sameSet(ch.PortMappings, dh.PortMappings) ||
		!sameJSON(ch.LogConfig, dh.LogConfig) {
		return ActionRecreate
	}
	if !sameJSON(resourcesOrEmpty(ch.Resources), resourcesOrEmpty(dh.Resources)) ||
		!sameJSON(ch.RestartPolicy, dh.RestartPolicy) {
		return ActionUpdate
	}
	return ActionCheck
}

func resourcesOrEmpty(r *Resources) Resources {
	if r == nil {
		return Resources{}
	}
	return *r
}

func env(c *Container) []string {
	if c.Config == nil {
		return nil
	}
	return c.Config.Env
}

func cmd(c *Container) []string {
	if c.Config == nil {
		return nil
	}
	return c.Config.Cmd
}

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// sameSet compares two slices as multisets through their JSON encodings.
func sameSet[T any](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	enc := func(s []T) []string {
		out := make([]string, len(s))
		for i, v := range s {
			j, _ := json.Marshal(v)
			out[i] = string(j)
		}
		sort.Strings(out)
		return out
	}
	return slices.Equal(enc(a), enc(b))
}
