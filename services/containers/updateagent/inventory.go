package updateagent

import (
	"context"
	"slices"
	"strconv"
	"strings"

	pb "github.com/kantofw/kanto/services/containers/api/types/containers"
	"github.com/kantofw/kanto/services/containers/model"
	"github.com/kantofw/kanto/services/containers/protoconv"
	"github.com/kantofw/kanto/services/internal/updateapi"
)

// Component config keys (desired state) and inventory parameter keys
// (current state), as upstream names them.
const (
	keyImage             = "image"
	keyTerminal          = "terminal"
	keyInteractive       = "interactive"
	keyPrivileged        = "privileged"
	keyRestartPolicy     = "restartPolicy"
	keyRestartMaxRetries = "restartMaxRetries"
	keyRestartTimeout    = "restartTimeout"
	keyDevice            = "device"
	keyPort              = "port"
	keyNetwork           = "network"
	keyHost              = "host"
	keyMount             = "mount"
	keyEnv               = "env"
	keyCmd               = "cmd"
	keyLogDriver         = "logDriver"
	keyLogMaxFiles       = "logMaxFiles"
	keyLogMaxSize        = "logMaxSize"
	keyLogPath           = "logPath"
	keyLogMode           = "logMode"
	keyLogMaxBufferSize  = "logMaxBufferSize"
	keyMemory            = "memory"
	keyMemoryReservation = "memoryReservation"
	keyMemorySwap        = "memorySwap"

	// Inventory only.
	keyDomainName                = "domainName"
	keyHostName                  = "hostName"
	keyStatus                    = "status"
	keyFinishedAt                = "finishedAt"
	keyExitCode                  = "exitCode"
	keyCreated                   = "created"
	keyRestartCount              = "restartCount"
	keyManuallyStopped           = "manuallyStopped"
	keyStartedSuccessfullyBefore = "startedSuccessfullyBefore"
)

// The defaults a non-verbose inventory leaves out (model.FillDefaults).
const (
	defaultLogMaxFiles      = 2
	defaultLogMaxSize       = "100M"
	defaultLogMaxBufferSize = "1M"
)

// CurrentState lists the containers under the agent node.
func (d *Domain) CurrentState(ctx context.Context) (updateapi.Inventory, error) {
	cs, err := d.list(ctx)
	if err != nil {
		return updateapi.Inventory{}, err
	}
	root := d.Name + "-update-agent"
	inv := updateapi.Inventory{SoftwareNodes: []updateapi.SoftwareNode{{ID: root, Version: d.Version,
		Name: "Eclipse Kanto Containers Update Agent", Type: updateapi.TypeApplication, Parameters: []updateapi.KeyValue{{Key: "domain", Value: d.Name}}}}}
	slices.SortFunc(cs, func(a, b *pb.Container) int { return strings.Compare(a.Name, b.Name) })
	for _, c := range cs {
		id := d.Name + ":" + c.Name
		inv.SoftwareNodes = append(inv.SoftwareNodes, updateapi.SoftwareNode{ID: id, Version: imageVersion(c.GetImage().GetName()),
			Type: updateapi.TypeContainer, Parameters: parameters(protoconv.FromProto(c), d.VerboseInventory)})
		inv.Associations = append(inv.Associations, updateapi.Association{SourceID: root, TargetID: id})
	}
	return inv, nil
}

// parameters describes a container in the inventory with the component
// config keys plus its runtime state, in upstream's order. Unless verbose
// (update_agent.verbose_inventory_report), values equal to the defaults are
// left out; status and created are always there. The gRPC API carries no
// started_successfully_before, so it is read from state.started_at, which
// the manager sets at exactly the same moment (a successful start) and
// clears at the same moment (create).
func parameters(c *model.Container, verbose bool) []updateapi.KeyValue {
	var ps []updateapi.KeyValue
	add := func(cond bool, k, v string) {
		if verbose || cond {
			ps = append(ps, updateapi.KeyValue{Key: k, Value: v})
		}
	}
	add(c.Image.Name != "", keyImage, c.Image.Name)
	add(c.DomainName != c.Name+"-domain", keyDomainName, c.DomainName)
	add(c.HostName != c.Name+"-host", keyHostName, c.HostName)
	if io := c.IOConfig; io != nil {
		add(io.Tty, keyTerminal, strconv.FormatBool(io.Tty))
		add(io.OpenStdin, keyInteractive, strconv.FormatBool(io.OpenStdin))
	}
	if h := c.HostConfig; h != nil {
		add(h.Privileged, keyPrivileged, strconv.FormatBool(h.Privileged))
		if rp := h.RestartPolicy; rp != nil {
			add(rp.Type != model.RestartUnlessStopped, keyRestartPolicy, rp.Type)
			add(rp.MaximumRetryCount != 0, keyRestartMaxRetries, strconv.Itoa(rp.MaximumRetryCount))
			// A Go duration here, though the config key takes seconds
			// (upstream's asymmetry, kept).
			add(rp.RetryTimeout != 0, keyRestartTimeout, rp.RetryTimeout.String())
		}
		for _, dv := range h.Devices {
			add(true, keyDevice, deviceString(dv))
		}
		for _, p := range h.PortMappings {
			add(true, keyPort, p.String())
		}
		add(h.NetworkMode != "" && h.NetworkMode != model.NetworkBridge, keyNetwork, h.NetworkMode)
		for _, x := range h.ExtraHosts {
			add(true, keyHost, x)
		}
		if l := h.LogConfig; l != nil {
			if dc := l.DriverConfig; dc != nil {
				add(dc.Type != "" && dc.Type != model.LogDriverJSONFile, keyLogDriver, dc.Type)
				add(dc.MaxFiles != defaultLogMaxFiles, keyLogMaxFiles, strconv.Itoa(dc.MaxFiles))
				add(dc.MaxSize != "" && dc.MaxSize != defaultLogMaxSize, keyLogMaxSize, dc.MaxSize)
				add(dc.RootDir != "", keyLogPath, dc.RootDir)
			}
			if mc := l.ModeConfig; mc != nil {
				add(mc.Mode != "" && mc.Mode != model.LogModeBlocking, keyLogMode, mc.Mode)
				add(mc.MaxBufferSize != "" && mc.MaxBufferSize != defaultLogMaxBufferSize, keyLogMaxBufferSize, mc.MaxBufferSize)
			}
		}
		if r := h.Resources; r != nil {
			add(r.Memory != "", keyMemory, r.Memory)
			add(r.MemoryReservation != "", keyMemoryReservation, r.MemoryReservation)
			add(r.MemorySwap != "", keyMemorySwap, r.MemorySwap)
		}
	}
	for _, m := range c.Mounts {
		add(true, keyMount, m.Source+":"+m.Destination+":"+m.PropagationMode)
	}
	if cfg := c.Config; cfg != nil {
		for _, e := range cfg.Env {
			add(true, keyEnv, e)
		}
		for _, a := range cfg.Cmd {
			add(true, keyCmd, a)
		}
	}
	running := false
	startedBefore := false
	if s := c.State; s != nil {
		running = s.Status == model.Running
		startedBefore = s.StartedAt != ""
		add(true, keyStatus, s.Status.String())
		add(s.FinishedAt != "" && !running, keyFinishedAt, s.FinishedAt)
		add(s.ExitCode != 0 && !running, keyExitCode, strconv.FormatInt(s.ExitCode, 10))
	}
	add(true, keyCreated, c.Created)
	add(c.RestartCount != 0, keyRestartCount, strconv.Itoa(c.RestartCount))
	add(c.ManuallyStopped && !running, keyManuallyStopped, strconv.FormatBool(c.ManuallyStopped))
	add(startedBefore && !running, keyStartedSuccessfullyBefore, strconv.FormatBool(startedBefore))
	return ps
}

// deviceString writes a device as the device config key reads it
// (host:container:permissions), leaving out empty parts.
func deviceString(d model.DeviceMapping) string {
	var parts []string
	for _, p := range []string{d.PathOnHost, d.PathInContainer, d.CgroupPermissions} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, ":")
}
