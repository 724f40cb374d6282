package ctrd

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kantofw/kanto/services/containers/model"
)

// RunSpec is what starting a container needs beyond its model.
type RunSpec struct {
	Container *model.Container
	// NetNS is the network namespace path; empty means the host's.
	NetNS string
	// Hosts, Resolv and Hostname are files bound over /etc/hosts,
	// /etc/resolv.conf and /etc/hostname; empty ones are not bound.
	Hosts, Resolv, Hostname string
	// LogFile is the json-file log path; empty means no log (driver none).
	LogFile     string
	LogMaxSize  int64
	LogMaxFiles int
	// LogBuffer > 0 selects the non-blocking mode with that many bytes.
	LogBuffer int64
	// Streams, when set, connect the task's stdio to the daemon through
	// FIFOs (interactive containers) instead of the shim-run log driver.
	Streams *Streams
}

// Streams are an interactive task's standard streams.
type Streams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Terminal       bool
}

func (s *Streams) opts() []cio.Opt {
	o := []cio.Opt{cio.WithStreams(s.Stdin, s.Stdout, s.Stderr)}
	if s.Terminal {
		o = append(o, cio.WithTerminal)
	}
	return o
}

func (c *Client) specOpts(img containerd.Image, s RunSpec) ([]oci.SpecOpts, error) {
	ctr := s.Container
	h := ctr.HostConfig
	var cmd []string
	if ctr.Config != nil {
		cmd = ctr.Config.Cmd
	}
	opts := []oci.SpecOpts{
		oci.WithImageConfigArgs(img, cmd),
		oci.WithHostname(ctr.HostName),
		oci.WithEnv([]string{"HOSTNAME=" + ctr.HostName}),
	}
	if ctr.IOConfig != nil && ctr.IOConfig.Tty {
		opts = append(opts, oci.WithTTY, oci.WithEnv([]string{"TERM=xterm"}))
	}
	if ctr.Config != nil && len(ctr.Config.Env) > 0 {
		opts = append(opts, oci.WithEnv(ctr.Config.Env))
	}
	var mounts []specs.Mount
	for _, m := range ctr.Mounts {
		mounts = append(mounts, specs.Mount{
			Destination: m.Destination, Source: m.Source, Type: "bind",
			Options: []string{"rbind", m.PropagationMode},
		})
	}
	for dst, src := range map[string]string{"/etc/hosts": s.Hosts, "/etc/resolv.conf": s.Resolv, "/etc/hostname": s.Hostname} {
		if src != "" {
			mounts = append(mounts, specs.Mount{Destination: dst, Source: src, Type: "bind", Options: []string{"rbind", "rprivate", "rw"}})
		}
	}
	opts = append(opts, oci.WithMounts(mounts))
	if s.NetNS != "" {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: s.NetNS}))
	} else {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace))
		if s.Hosts == "" {
			opts = append(opts, oci.WithHostHostsFile)
		}
		if s.Resolv == "" {
			opts = append(opts, oci.WithHostResolvconf)
		}
	}
	if h.Privileged {
		opts = append(opts, oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices)
	}
	for _, d := range h.Devices {
		opts = append(opts, withDevice(d))
	}
	if len(h.ExtraCapabilities) > 0 && !h.Privileged {
		opts = append(opts, oci.WithAddedCapabilities(h.ExtraCapabilities))
	}
	if r := h.Resources; r != nil {
		mem, err := memory(r)
		if err != nil {
			return nil, err
		}
		if mem != nil {
			opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, sp *oci.Spec) error {
				if sp.Linux.Resources == nil {
					sp.Linux.Resources = &specs.LinuxResources{}
				}
				sp.Linux.Resources.Memory = mem
				return nil
			})
		}
	}
	if len(ctr.Hooks) > 0 {
		opts = append(opts, withHooks(ctr.Hooks))
	}
	return opts, nil
}

// memory converts the model's sizes to the OCI memory block; nil when no
// limit is set.
func memory(r *model.Resources) (*specs.LinuxMemory, error) {
	var m specs.LinuxMemory
	set := false
	for _, f := range []struct {
		v   string
		dst **int64
	}{{r.Memory, &m.Limit}, {r.MemoryReservation, &m.Reservation}, {r.MemorySwap, &m.Swap}} {
		if f.v == "" || f.v == "-1" {
			continue
		}
		n, err := model.ParseSize(f.v)
		if err != nil {
			return nil, err
		}
		*f.dst = &n
		set = true
	}
	if !set {
		return nil, nil
	}
	return &m, nil
}

// MemoryUpdate is the block Update sends to a running task: limits that were
// removed become -1 (unlimited).
func MemoryUpdate(r *model.Resources) (*specs.LinuxMemory, error) {
	if r == nil {
		r = &model.Resources{}
	}
	m, err := memory(r)
	if err != nil {
		return nil, err
	}
	if m == nil {
		m = &specs.LinuxMemory{}
	}
	unl := int64(-1)
	if m.Limit == nil {
		m.Limit = &unl
	}
	if m.Swap == nil {
		m.Swap = &unl
	}
	if m.Reservation == nil {
		zero := int64(0)
		m.Reservation = &zero
	}
	return m, nil
}

func withDevice(d model.DeviceMapping) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		dev, err := oci.DeviceFromPath(d.PathOnHost)
		if err != nil {
			return fmt.Errorf("device %s: %w", d.PathOnHost, err)
		}
		dev.Path = d.PathInContainer
		s.Linux.Devices = append(s.Linux.Devices, *dev)
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		major, minor := dev.Major, dev.Minor
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
			Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: d.CgroupPermissions,
		})
		return nil
	}
}

func withHooks(hooks []model.Hook) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Hooks == nil {
			s.Hooks = &specs.Hooks{}
		}
		for _, h := range hooks {
			oh := specs.Hook{Path: h.Path, Args: h.Args, Env: h.Env}
			if h.Timeout > 0 {
				t := h.Timeout
				oh.Timeout = &t
			}
			switch h.Type {
			case model.HookPrestart:
				s.Hooks.CreateRuntime = append(s.Hooks.CreateRuntime, oh)
			case model.HookPoststart:
				s.Hooks.Poststart = append(s.Hooks.Poststart, oh)
			case model.HookPoststop:
				s.Hooks.Poststop = append(s.Hooks.Poststop, oh)
			}
		}
		return nil
	}
}

// logArgs are the logging binary's flags, passed through the log URI.
func logArgs(s RunSpec) map[string]string {
	return map[string]string{
		"--file":            s.LogFile,
		"--max-size":        strconv.FormatInt(s.LogMaxSize, 10),
		"--max-files":       strconv.Itoa(s.LogMaxFiles),
		"--max-buffer-size": strconv.FormatInt(s.LogBuffer, 10),
	}
}
