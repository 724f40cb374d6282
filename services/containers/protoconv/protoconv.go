// Package protoconv converts between the container model and the messages of
// the local gRPC API. The wire forms differ from the model in two places:
// restart_policy.retry_timeout is in seconds and state.status is a name.
package protoconv

import (
	"time"

	pb "github.com/kantofw/kanto/services/containers/api/types/containers"
	"github.com/kantofw/kanto/services/containers/model"
)

// ToProto converts a container to its API form.
func ToProto(c *model.Container) *pb.Container {
	if c == nil {
		return nil
	}
	out := &pb.Container{
		Id: c.ID, Name: c.Name,
		Image:    &pb.Image{Name: c.Image.Name},
		HostName: c.HostName, DomainName: c.DomainName,
		ResolvConfPath: c.ResolvConfPath, HostsPath: c.HostsPath, HostnamePath: c.HostnamePath,
		Created: c.Created, ManuallyStopped: c.ManuallyStopped, RestartCount: int64(c.RestartCount),
	}
	if d := c.Image.DecryptConfig; d != nil {
		out.Image.DecryptConfig = &pb.DecryptConfig{Keys: d.Keys, Recipients: d.Recipients}
	}
	for _, m := range c.Mounts {
		out.Mounts = append(out.Mounts, &pb.MountPoint{Destination: m.Destination, Source: m.Source, PropagationMode: m.PropagationMode})
	}
	for _, h := range c.Hooks {
		out.Hooks = append(out.Hooks, &pb.Hook{Path: h.Path, Args: h.Args, Env: h.Env, Timeout: int32(h.Timeout), Type: hookName(h.Type)})
	}
	if h := c.HostConfig; h != nil {
		ph := &pb.HostConfig{
			NetworkMode: h.NetworkMode, Privileged: h.Privileged, Runtime: h.Runtime,
			ExtraHosts: h.ExtraHosts, ExtraCapabilities: h.ExtraCapabilities,
			RestartPolicy: RestartPolicyToProto(h.RestartPolicy), Resources: ResourcesToProto(h.Resources),
		}
		for _, d := range h.Devices {
			ph.Devices = append(ph.Devices, &pb.DeviceMapping{PathOnHost: d.PathOnHost, PathInContainer: d.PathInContainer, CgroupPermissions: d.CgroupPermissions})
		}
		for _, p := range h.PortMappings {
			ph.PortMappings = append(ph.PortMappings, &pb.PortMapping{Protocol: p.Proto, HostIp: p.HostIP, HostPort: int64(p.HostPort), HostPortEnd: int64(p.HostPortEnd), ContainerPort: int64(p.ContainerPort)})
		}
		if l := h.LogConfig; l != nil {
			pl := &pb.LogConfiguration{}
			if d := l.DriverConfig; d != nil {
				pl.DriverConfig = &pb.LogDriverConfiguration{Type: d.Type, MaxFiles: int64(d.MaxFiles), MaxSize: d.MaxSize, RootDir: d.RootDir}
			}
			if mc := l.ModeConfig; mc != nil {
				pl.ModeConfig = &pb.LogModeConfiguration{Mode: mc.Mode, MaxBufferSize: mc.MaxBufferSize}
			}
			ph.LogConfig = pl
		}
		out.HostConfig = ph
	}
	if io := c.IOConfig; io != nil {
		out.IoConfig = &pb.IOConfig{AttachStderr: io.AttachStderr, AttachStdin: io.AttachStdin, AttachStdout: io.AttachStdout, OpenStdin: io.OpenStdin, StdinOnce: io.StdinOnce, Tty: io.Tty}
	}
	if cfg := c.Config; cfg != nil {
		out.Config = &pb.ContainerConfiguration{Env: cfg.Env, Cmd: cfg.Cmd}
	}
	if ns := c.NetworkSettings; ns != nil {
		pn := &pb.NetworkSettings{SandboxId: ns.SandboxID, SandboxKey: ns.SandboxKey, NetworkControllerId: ns.NetworkControllerID, Networks: map[string]*pb.EndpointSettings{}}
		for k, v := range ns.Networks {
			if v != nil {
				pn.Networks[k] = &pb.EndpointSettings{Id: v.ID, Gateway: v.Gateway, IpAddress: v.IPAddress, MacAddress: v.MacAddress, NetworkId: v.NetworkID}
			}
		}
		out.NetworkSettings = pn
	}
	if s := c.State; s != nil {
		out.State = &pb.State{
			Pid: s.Pid, StartedAt: s.StartedAt, Error: s.Error, ExitCode: s.ExitCode, FinishedAt: s.FinishedAt,
			Exited: s.Exited, Dead: s.Dead, Restarting: s.Restarting, Paused: s.Paused, Running: s.Running,
			Status: s.Status.String(), OomKilled: s.OOMKilled,
		}
	}
	return out
}

// FromProto converts an API container to the model.
func FromProto(p *pb.Container) *model.Container {
	if p == nil {
		return nil
	}
	c := &model.Container{
		ID: p.Id, Name: p.Name, HostName: p.HostName, DomainName: p.DomainName,
		ResolvConfPath: p.ResolvConfPath, HostsPath: p.HostsPath, HostnamePath: p.HostnamePath,
		Created: p.Created, ManuallyStopped: p.ManuallyStopped, RestartCount: int(p.RestartCount),
	}
	if img := p.Image; img != nil {
		c.Image.Name = img.Name
		if d := img.DecryptConfig; d != nil {
			c.Image.DecryptConfig = &model.DecryptConfig{Keys: d.Keys, Recipients: d.Recipients}
		}
	}
	for _, m := range p.Mounts {
		c.Mounts = append(c.Mounts, model.MountPoint{Destination: m.Destination, Source: m.Source, PropagationMode: m.PropagationMode})
	}
	for _, h := range p.Hooks {
		c.Hooks = append(c.Hooks, model.Hook{Path: h.Path, Args: h.Args, Env: h.Env, Timeout: int(h.Timeout), Type: hookType(h.Type)})
	}
	if h := p.HostConfig; h != nil {
		mh := &model.HostConfig{
			NetworkMode: h.NetworkMode, Privileged: h.Privileged, Runtime: h.Runtime,
			ExtraHosts: h.ExtraHosts, ExtraCapabilities: h.ExtraCapabilities,
			RestartPolicy: RestartPolicyFromProto(h.RestartPolicy), Resources: ResourcesFromProto(h.Resources),
		}
		for _, d := range h.Devices {
			mh.Devices = append(mh.Devices, model.DeviceMapping{PathOnHost: d.PathOnHost, PathInContainer: d.PathInContainer, CgroupPermissions: d.CgroupPermissions})
		}
		for _, pm := range h.PortMappings {
			mh.PortMappings = append(mh.PortMappings, model.PortMapping{Proto: pm.Protocol, HostIP: pm.HostIp, HostPort: uint16(pm.HostPort), HostPortEnd: uint16(pm.HostPortEnd), ContainerPort: uint16(pm.ContainerPort)})
		}
		if l := h.LogConfig; l != nil {
			ml := &model.LogConfiguration{}
			if d := l.DriverConfig; d != nil {
				ml.DriverConfig = &model.LogDriverConfiguration{Type: d.Type, MaxFiles: int(d.MaxFiles), MaxSize: d.MaxSize, RootDir: d.RootDir}
			}
			if mc := l.ModeConfig; mc != nil {
				ml.ModeConfig = &model.LogModeConfiguration{Mode: mc.Mode, MaxBufferSize: mc.MaxBufferSize}
			}
			mh.LogConfig = ml
		}
		c.HostConfig = mh
	}
	if io := p.IoConfig; io != nil {
		c.IOConfig = &model.IOConfig{AttachStderr: io.AttachStderr, AttachStdin: io.AttachStdin, AttachStdout: io.AttachStdout, OpenStdin: io.OpenStdin, StdinOnce: io.StdinOnce, Tty: io.Tty}
	}
	if cfg := p.Config; cfg != nil {
		c.Config = &model.ContainerConfiguration{Env: cfg.Env, Cmd: cfg.Cmd}
	}
	if ns := p.NetworkSettings; ns != nil {
		mn := &model.NetworkSettings{SandboxID: ns.SandboxId, SandboxKey: ns.SandboxKey, NetworkControllerID: ns.NetworkControllerId, Networks: map[string]*model.EndpointSettings{}}
		for k, v := range ns.Networks {
			if v != nil {
				mn.Networks[k] = &model.EndpointSettings{ID: v.Id, Gateway: v.Gateway, IPAddress: v.IpAddress, MacAddress: v.MacAddress, NetworkID: v.NetworkId}
			}
		}
		c.NetworkSettings = mn
	}
	if s := p.State; s != nil {
		c.State = &model.State{
			Pid: s.Pid, StartedAt: s.StartedAt, Error: s.Error, ExitCode: s.ExitCode, FinishedAt: s.FinishedAt,
			Exited: s.Exited, Dead: s.Dead, Restarting: s.Restarting, Paused: s.Paused, Running: s.Running,
			Status: model.ParseStatus(s.Status), OOMKilled: s.OomKilled,
		}
	}
	return c
}

// RestartPolicyToProto converts; the timeout goes out in seconds.
func RestartPolicyToProto(r *model.RestartPolicy) *pb.RestartPolicy {
	if r == nil {
		return nil
	}
	return &pb.RestartPolicy{MaximumRetryCount: int64(r.MaximumRetryCount), RetryTimeout: int64(r.RetryTimeout / time.Second), Type: r.Type}
}

// RestartPolicyFromProto converts; the timeout comes in seconds.
func RestartPolicyFromProto(r *pb.RestartPolicy) *model.RestartPolicy {
	if r == nil {
		return nil
	}
	return &model.RestartPolicy{MaximumRetryCount: int(r.MaximumRetryCount), RetryTimeout: time.Duration(r.RetryTimeout) * time.Second, Type: r.Type}
}

// ResourcesToProto converts memory limits.
func ResourcesToProto(r *model.Resources) *pb.Resources {
	if r == nil {
		return nil
	}
	return &pb.Resources{Memory: r.Memory, MemoryReservation: r.MemoryReservation, MemorySwap: r.MemorySwap}
}

// ResourcesFromProto converts memory limits.
func ResourcesFromProto(r *pb.Resources) *model.Resources {
	if r == nil {
		return nil
	}
	return &model.Resources{Memory: r.Memory, MemoryReservation: r.MemoryReservation, MemorySwap: r.MemorySwap}
}

// StopOptionsFromProto converts stop options.
func StopOptionsFromProto(o *pb.StopOptions) *model.StopOptions {
	if o == nil {
		return nil
	}
	return &model.StopOptions{Timeout: o.Timeout, Force: o.Force, Signal: o.Signal}
}

// StopOptionsToProto converts stop options.
func StopOptionsToProto(o *model.StopOptions) *pb.StopOptions {
	if o == nil {
		return nil
	}
	return &pb.StopOptions{Timeout: o.Timeout, Force: o.Force, Signal: o.Signal}
}

func hookName(t model.HookType) string {
	switch t {
	case model.HookPoststart:
		return "Poststart"
	case model.HookPoststop:
		return "Poststop"
	}
	return "Prestart"
}

func hookType(s string) model.HookType {
	switch s {
	case "Poststart", "poststart":
		return model.HookPoststart
	case "Poststop", "poststop":
		return model.HookPoststop
	}
	return model.HookPrestart
}
