// Package updateagent is the "containers" domain agent of the update
// manager: it brings the containers of the container management daemon to
// a desired state through the daemon's gRPC API (the same one kanto-cm
// uses), following upstream's agent (cm:containerm/updateagent):
//
//   - component id = container name; version is informational, except that
//     without an image config key the image is "<id>:<version>";
//   - config keys: image, env and cmd (repeatable, cmd ordered), port,
//     device, mount (repeatable), privileged, terminal, interactive,
//     network, restartPolicy, restartMaxRetries and restartTimeout
//     (seconds; both on-failure only), logDriver, logMaxFiles, logMaxSize,
//     logPath, logMode, logMaxBufferSize, memory, memoryReservation,
//     memorySwap; bad port, device or mount strings and bad booleans or
//     logMaxFiles are skipped with a warning, as upstream;
//   - the current state has one node per container whose parameters are
//     the same keys plus the runtime state (inventory.go);
//   - a container not in the desired state is destroyed unless it is a
//     system container (domain config key systemContainers overrides the
//     configured list).
//
// Phases: DOWNLOAD creates the new containers (pulling images), UPDATE
// stops the old ones (recreate, destroy) or applies runtime updates,
// ACTIVATE starts the new ones and makes sure the kept ones run, CLEANUP
// removes the old ones, ROLLBACK removes the new ones and restarts the old.
package updateagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	ctrsvc "github.com/kantofw/kanto/services/containers/api/services/containers"
	pb "github.com/kantofw/kanto/services/containers/api/types/containers"
	"github.com/kantofw/kanto/services/containers/model"
	"github.com/kantofw/kanto/services/containers/protoconv"
	"github.com/kantofw/kanto/services/internal/updateagent"
	"github.com/kantofw/kanto/services/internal/updateapi"
)

// Containers is the part of the daemon's API the agent uses;
// ctrsvc.ContainersClient implements it. Errors are gRPC status errors.
type Containers interface {
	List(ctx context.Context, in *ctrsvc.ListContainersRequest, opts ...grpc.CallOption) (*ctrsvc.ListContainersResponse, error)
	Create(ctx context.Context, in *ctrsvc.CreateContainerRequest, opts ...grpc.CallOption) (*ctrsvc.CreateContainerResponse, error)
	Start(ctx context.Context, in *ctrsvc.StartContainerRequest, opts ...grpc.CallOption) (*emptypb.Empty, error)
	Stop(ctx context.Context, in *ctrsvc.StopContainerRequest, opts ...grpc.CallOption) (*emptypb.Empty, error)
	Update(ctx context.Context, in *ctrsvc.UpdateContainerRequest, opts ...grpc.CallOption) (*emptypb.Empty, error)
	Remove(ctx context.Context, in *ctrsvc.RemoveContainerRequest, opts ...grpc.CallOption) (*emptypb.Empty, error)
	Rename(ctx context.Context, in *ctrsvc.RenameContainerRequest, opts ...grpc.CallOption) (*emptypb.Empty, error)
}

var _ Containers = (ctrsvc.ContainersClient)(nil)

// ErrComponent marks a desired container that cannot be built.
var ErrComponent = errors.New("invalid container component")

// Domain is the containers domain.
type Domain struct {
	Name             string // "containers"
	API              Containers
	SystemContainers []string
	Version          string // of the agent node
	// VerboseInventory reports every container parameter in the current
	// state, defaults included (update_agent.verbose_inventory_report).
	VerboseInventory bool
	Log              *slog.Logger
}

var _ updateagent.Domain = (*Domain)(nil)

// action kinds, as upstream.
const (
	kindCreate   = "create"
	kindRecreate = "recreate"
	kindUpdate   = "update"
	kindCheck    = "check"
	kindDestroy  = "destroy"
)

var messages = map[string]string{
	kindCreate:   "New container will be created and started.",
	kindRecreate: "Existing container will be replaced by a new one.",
	kindUpdate:   "Existing container will be updated with new configuration.",
	kindCheck:    "Existing container will be started.",
	kindDestroy:  "Existing container will be destroyed.",
}

type step struct {
	Action  int              `json:"action"`
	Kind    string           `json:"kind"`
	Name    string           `json:"name"`
	Desired *model.Container `json:"desired,omitempty"`
	OldID   string           `json:"oldId,omitempty"`
	NewID   string           `json:"newId,omitempty"`
	Stopped bool             `json:"stopped,omitempty"` // the old one was stopped by UPDATE
	// Swapped: the old container was renamed aside and the new one took
	// the name (ACTIVATE of a recreate).
	Swapped bool `json:"swapped,omitempty"`
}

// The daemon keeps names unique, so a recreate creates the new container
// under a side name and swaps names at ACTIVATE (upstream's daemon allows
// duplicate names and needs no swap).
func newName(name string) string { return name + "-kua-new" }
func oldName(name string) string { return name + "-kua-old" }

type plan struct {
	Steps []step `json:"steps"`
}

func (d *Domain) list(ctx context.Context) ([]*pb.Container, error) {
	r, err := d.API.List(ctx, &ctrsvc.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return r.Containers, nil
}

// imageVersion is the tag or digest of an image reference, else "n/a".
func imageVersion(ref string) string {
	if _, dig, ok := strings.Cut(ref, "@"); ok {
		return dig
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	if _, tag, ok := strings.Cut(last, ":"); ok {
		return tag
	}
	return "n/a"
}

// Identify compares the desired containers with the current ones by name.
func (d *Domain) Identify(ctx context.Context, op *updateagent.Operation) error {
	current, err := d.list(ctx)
	if err != nil {
		return err
	}
	byName := map[string]*pb.Container{}
	for _, c := range current {
		if old, ok := byName[c.Name]; !ok || old.Created < c.Created {
			byName[c.Name] = c
		}
	}
	system := d.SystemContainers
	if op.Desired != nil && len(op.Desired.Domains) == 1 {
		if v, ok := updateapi.ConfigValue(op.Desired.Domains[0].Config, "systemContainers"); ok {
			system = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
		}
	}
	var pl plan
	want := map[string]bool{}
	add := func(s step, version string) {
		s.Action = len(op.Actions)
		pl.Steps = append(pl.Steps, s)
		op.Actions = append(op.Actions, updateapi.Action{Component: updateapi.ComponentRef{ID: d.Name + ":" + s.Name, Version: version},
			Status: updateapi.ActionIdentified, Message: messages[s.Kind]})
	}
	for _, comp := range op.Components() {
		want[comp.ID] = true
		desired, err := d.container(comp)
		if err != nil {
			return err
		}
		cur := byName[comp.ID]
		var curModel *model.Container
		if cur != nil {
			curModel = protoconv.FromProto(cur)
			model.FillDefaults(curModel)
		}
		s := step{Name: comp.ID, Desired: desired}
		if cur != nil {
			s.OldID = cur.Id
		}
		switch model.DetermineUpdateAction(curModel, desired) {
		case model.ActionCreate:
			s.Kind = kindCreate
		case model.ActionRecreate:
			s.Kind = kindRecreate
		case model.ActionUpdate:
			s.Kind = kindUpdate
		default:
			if cur.GetState().GetRunning() {
				continue // nothing to do
			}
			s.Kind = kindCheck
		}
		add(s, comp.Version)
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if want[n] || slices.Contains(system, n) {
			continue
		}
		c := byName[n]
		add(step{Kind: kindDestroy, Name: n, OldID: c.Id}, imageVersion(c.GetImage().GetName()))
	}
	op.Data, _ = json.Marshal(pl)
	return nil
}

// container builds the desired container of a component. Like upstream,
// the restart counters apply to on-failure only and a bad boolean or
// logMaxFiles is skipped with a warning (leaving the default); unlike
// upstream, a bad restart counter fails the component rather than becoming 0.
func (d *Domain) container(comp updateapi.Component) (*model.Container, error) {
	c := &model.Container{Name: comp.ID, HostConfig: &model.HostConfig{}, IOConfig: &model.IOConfig{}, Config: &model.ContainerConfiguration{}}
	h := c.HostConfig
	rp := &model.RestartPolicy{}
	var mem model.Resources
	var logDriver model.LogDriverConfiguration
	var logMode model.LogModeConfiguration
	boolean := func(k, v string) bool {
		b, err := strconv.ParseBool(v)
		if err != nil {
			d.Log.Warn("skipping boolean", "container", comp.ID, "key", k, "value", v)
		}
		return b
	}
	for _, kv := range comp.Config {
		v := kv.Value
		switch kv.Key {
		case keyImage:
			c.Image.Name = v
		case keyEnv:
			c.Config.Env = append(c.Config.Env, v)
		case keyCmd:
			c.Config.Cmd = append(c.Config.Cmd, v)
		case keyPort:
			if p, err := model.ParsePort(v); err == nil {
				h.PortMappings = append(h.PortMappings, p)
			} else {
				d.Log.Warn("skipping port", "container", comp.ID, "value", v, "err", err)
			}
		case keyDevice:
			if p, err := model.ParseDevice(v); err == nil {
				h.Devices = append(h.Devices, p)
			} else {
				d.Log.Warn("skipping device", "container", comp.ID, "value", v, "err", err)
			}
		case keyMount:
			if p, err := model.ParseMount(v); err == nil {
				c.Mounts = append(c.Mounts, p)
			} else {
				d.Log.Warn("skipping mount", "container", comp.ID, "value", v, "err", err)
			}
		case keyHost:
			h.ExtraHosts = append(h.ExtraHosts, v)
		case keyPrivileged:
			h.Privileged = boolean(kv.Key, v)
		case keyTerminal:
			c.IOConfig.Tty = boolean(kv.Key, v)
		case keyInteractive:
			c.IOConfig.OpenStdin = boolean(kv.Key, v)
		case keyNetwork:
			h.NetworkMode = v
		case keyRestartPolicy:
			rp.Type = v
		case keyRestartMaxRetries:
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("container %s: restartMaxRetries %q: %w", comp.ID, v, ErrComponent)
			}
			rp.MaximumRetryCount = n
		case keyRestartTimeout:
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("container %s: restartTimeout %q: %w", comp.ID, v, ErrComponent)
			}
			rp.RetryTimeout = time.Duration(n) * time.Second
		case keyLogDriver:
			logDriver.Type = v
		case keyLogMaxFiles:
			if n, err := strconv.Atoi(v); err == nil {
				logDriver.MaxFiles = n
			} else {
				d.Log.Warn("skipping logMaxFiles", "container", comp.ID, "value", v)
			}
		case keyLogMaxSize:
			logDriver.MaxSize = v
		case keyLogPath:
			logDriver.RootDir = v
		case keyLogMode:
			logMode.Mode = v
		case keyLogMaxBufferSize:
			logMode.MaxBufferSize = v
		case keyMemory:
			mem.Memory = v
		case keyMemoryReservation:
			mem.MemoryReservation = v
		case keyMemorySwap:
			mem.MemorySwap = v
		}
	}
	if c.Image.Name == "" {
		if comp.Version == "" {
			return nil, fmt.Errorf("container %s: neither an image config key nor a version: %w", comp.ID, ErrComponent)
		}
		c.Image.Name = comp.ID + ":" + comp.Version
	}
	if rp.Type != "" {
		if rp.Type != model.RestartOnFailure {
			rp.MaximumRetryCount, rp.RetryTimeout = 0, 0
		}
		h.RestartPolicy = rp
	}
	// FillDefaults completes what the keys leave out (json-file, 2 files of
	// 100M, blocking; a 1M buffer when non-blocking).
	h.LogConfig = &model.LogConfiguration{DriverConfig: &logDriver, ModeConfig: &logMode}
	if mem != (model.Resources{}) {
		h.Resources = &mem
	}
	model.FillDefaults(c)
	if err := model.Validate(c); err != nil {
		return nil, fmt.Errorf("container %s: %w: %w", comp.ID, err, ErrComponent)
	}
	return c, nil
}

// Execute runs one phase over the plan.
func (d *Domain) Execute(ctx context.Context, cmd updateapi.CommandType, op *updateagent.Operation) error {
	var pl plan
	if err := json.Unmarshal(op.Data, &pl); err != nil {
		return fmt.Errorf("persisted plan: %w", err)
	}
	save := func() error {
		op.Data, _ = json.Marshal(pl)
		return op.Save()
	}
	var errs []error
	set := func(s *step, st updateapi.ActionStatus, err error) {
		a := &op.Actions[s.Action]
		a.Status, a.Message = st, messages[s.Kind]
		if err != nil {
			a.Message = err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", s.Name, err))
		}
	}
	switch cmd {
	case updateapi.CommandDownload:
		for i := range pl.Steps {
			s := &pl.Steps[i]
			if (s.Kind == kindCreate || s.Kind == kindRecreate) && s.NewID == "" {
				desired := *s.Desired
				desired.ID = "" // the daemon assigns it
				if s.Kind == kindRecreate {
					desired.Name = newName(s.Name)
				}
				r, err := d.API.Create(ctx, &ctrsvc.CreateContainerRequest{Container: protoconv.ToProto(&desired)})
				if err != nil {
					set(s, updateapi.ActionDownloadFailure, err)
					continue
				}
				s.NewID = r.Container.Id
				if err := save(); err != nil {
					return err
				}
			}
			set(s, updateapi.ActionDownloadSuccess, nil)
		}
	case updateapi.CommandUpdate:
		for i := range pl.Steps {
			s := &pl.Steps[i]
			switch s.Kind {
			case kindRecreate, kindDestroy:
				if !s.Stopped {
					if err := d.stop(ctx, s.OldID); err != nil {
						set(s, updateapi.ActionUpdateFailure, err)
						continue
					}
					s.Stopped = true
					if err := save(); err != nil {
						return err
					}
				}
			case kindUpdate:
				h := s.Desired.HostConfig
				_, err := d.API.Update(ctx, &ctrsvc.UpdateContainerRequest{Id: s.OldID, UpdateOptions: &pb.UpdateOptions{
					RestartPolicy: protoconv.RestartPolicyToProto(h.RestartPolicy), Resources: protoconv.ResourcesToProto(h.Resources)}})
				if err != nil {
					set(s, updateapi.ActionUpdateFailure, err)
					continue
				}
			}
			st := updateapi.ActionUpdateSuccess
			if s.Kind == kindDestroy {
				st = updateapi.ActionRemoving
			}
			set(s, st, nil)
		}
	case updateapi.CommandActivate:
		for i := range pl.Steps {
			s := &pl.Steps[i]
			id := s.NewID
			if s.Kind == kindUpdate || s.Kind == kindCheck {
				id = s.OldID
			}
			if s.Kind == kindRecreate && !s.Swapped {
				if err := d.swap(ctx, s); err != nil {
					set(s, updateapi.ActionActivationFailure, err)
					continue
				}
				if err := save(); err != nil {
					return err
				}
			}
			if s.Kind != kindDestroy {
				if err := d.start(ctx, id); err != nil {
					set(s, updateapi.ActionActivationFailure, err)
					continue
				}
				set(s, updateapi.ActionActivationSuccess, nil)
			}
		}
	case updateapi.CommandCleanup:
		failed := op.Failed
		for i := range pl.Steps {
			s := &pl.Steps[i]
			if failed {
				// Undo: the new container goes, the old one runs again.
				d.undo(ctx, s, set)
				continue
			}
			if s.Kind == kindRecreate || s.Kind == kindDestroy {
				if err := d.remove(ctx, s.OldID); err != nil {
					st := updateapi.ActionActivationSuccess
					if s.Kind == kindDestroy {
						st = updateapi.ActionRemovalFailure
					}
					set(s, st, err)
					continue
				}
				if s.Kind == kindDestroy {
					set(s, updateapi.ActionRemovalSuccess, nil)
				}
			}
		}
	case updateapi.CommandRollback:
		for i := range pl.Steps {
			d.undo(ctx, &pl.Steps[i], set)
		}
	}
	if err := save(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// swap renames the old container aside and gives the new one the name.
func (d *Domain) swap(ctx context.Context, s *step) error {
	if _, err := d.API.Rename(ctx, &ctrsvc.RenameContainerRequest{Id: s.OldID, Name: oldName(s.Name)}); err != nil {
		return err
	}
	if _, err := d.API.Rename(ctx, &ctrsvc.RenameContainerRequest{Id: s.NewID, Name: s.Name}); err != nil {
		return err
	}
	s.Swapped = true
	return nil
}

func (d *Domain) undo(ctx context.Context, s *step, set func(*step, updateapi.ActionStatus, error)) {
	if s.NewID != "" {
		if err := d.remove(ctx, s.NewID); err != nil {
			set(s, updateapi.ActionUpdateFailure, err)
			return
		}
		s.NewID = ""
	}
	if s.Swapped {
		if _, err := d.API.Rename(ctx, &ctrsvc.RenameContainerRequest{Id: s.OldID, Name: s.Name}); err != nil {
			set(s, updateapi.ActionUpdateFailure, err)
			return
		}
		s.Swapped = false
	}
	if s.Stopped && s.OldID != "" {
		if err := d.start(ctx, s.OldID); err != nil {
			set(s, updateapi.ActionUpdateFailure, err)
			return
		}
		s.Stopped = false
	}
}

func (d *Domain) stop(ctx context.Context, id string) error {
	_, err := d.API.Stop(ctx, &ctrsvc.StopContainerRequest{Id: id, StopOptions: &pb.StopOptions{Timeout: 10, Force: true}})
	if err != nil && strings.Contains(err.Error(), "not running") {
		return nil
	}
	return err
}

func (d *Domain) start(ctx context.Context, id string) error {
	_, err := d.API.Start(ctx, &ctrsvc.StartContainerRequest{Id: id})
	if err != nil && strings.Contains(err.Error(), "already running") {
		return nil
	}
	return err
}

func (d *Domain) remove(ctx context.Context, id string) error {
	_, err := d.API.Remove(ctx, &ctrsvc.RemoveContainerRequest{Id: id, Force: true})
	return err
}
