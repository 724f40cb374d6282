package things

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/kantofw/kanto/services/containers/model"
)

// Feature definitions, as upstream.
const (
	FactoryDefinition   = "com.bosch.iot.suite.edge.containers:ContainerFactory:1.3.0"
	ContainerDefinition = "com.bosch.iot.suite.edge.containers:Container:1.5.0"
	MetricsDefinition   = "com.bosch.iot.suite.edge.metric:Metrics:1.0.0"
)

// restartPolicy is the camelCase restart policy (retryTimeout in seconds).
type restartPolicy struct {
	Type          string `json:"type"`
	MaxRetryCount int    `json:"maxRetryCount,omitempty"`
	RetryTimeout  int64  `json:"retryTimeout,omitempty"`
}

type resources struct {
	Memory            string `json:"memory,omitempty"`
	MemoryReservation string `json:"memoryReservation,omitempty"`
	MemorySwap        string `json:"memorySwap,omitempty"`
}

type mountPoint struct {
	Source          string `json:"source"`
	Destination     string `json:"destination"`
	PropagationMode string `json:"propagationMode,omitempty"`
}

type device struct {
	PathOnHost        string `json:"pathOnHost"`
	PathInContainer   string `json:"pathInContainer"`
	CgroupPermissions string `json:"cgroupPermissions,omitempty"`
}

type portMapping struct {
	Proto         string `json:"proto,omitempty"`
	HostPort      int    `json:"hostPort"`
	HostPortEnd   int    `json:"hostPortEnd,omitempty"`
	ContainerPort int    `json:"containerPort"`
	HostIP        string `json:"hostIP,omitempty"`
}

type logConfig struct {
	Type          string `json:"type,omitempty"`
	MaxFiles      int    `json:"maxFiles,omitempty"`
	MaxSize       string `json:"maxSize,omitempty"`
	RootDir       string `json:"rootDir,omitempty"`
	Mode          string `json:"mode,omitempty"`
	MaxBufferSize string `json:"maxBufferSize,omitempty"`
}

type decryption struct {
	Keys       []string `json:"keys,omitempty"`
	Recipients []string `json:"recipients,omitempty"`
}

// config is the camelCase container configuration of the Ditto features.
type config struct {
	DomainName        string         `json:"domainName,omitempty"`
	HostName          string         `json:"hostName,omitempty"`
	Env               []string       `json:"env,omitempty"`
	Cmd               []string       `json:"cmd,omitempty"`
	Privileged        bool           `json:"privileged,omitempty"`
	ExtraHosts        []string       `json:"extraHosts,omitempty"`
	ExtraCapabilities []string       `json:"extraCapabilities,omitempty"`
	NetworkMode       string         `json:"networkMode,omitempty"`
	OpenStdin         bool           `json:"openStdin,omitempty"`
	Tty               bool           `json:"tty,omitempty"`
	MountPoints       []mountPoint   `json:"mountPoints,omitempty"`
	Decryption        *decryption    `json:"decryption,omitempty"`
	Devices           []device       `json:"devices,omitempty"`
	RestartPolicy     *restartPolicy `json:"restartPolicy,omitempty"`
	PortMappings      []portMapping  `json:"portMappings,omitempty"`
	Log               *logConfig     `json:"log,omitempty"`
	Resources         *resources     `json:"resources,omitempty"`
}

// enum maps a Ditto enum (RESTART_ALWAYS style upper snake, or the internal
// lower-case form) to the internal value; unknown values pass through.
func enum(s string) string {
	if s == "" {
		return ""
	}
	return strings.ReplaceAll(strings.ToLower(s), "_", "-")
}

// upper maps an internal value to the twin's upper snake form.
func upper(s string) string { return strings.ReplaceAll(strings.ToUpper(s), "-", "_") }

func (cf *config) toModel(c *model.Container) {
	c.DomainName, c.HostName = cf.DomainName, cf.HostName
	if len(cf.Env) > 0 || len(cf.Cmd) > 0 {
		c.Config = &model.ContainerConfiguration{Env: cf.Env, Cmd: cf.Cmd}
	}
	h := &model.HostConfig{Privileged: cf.Privileged, ExtraHosts: cf.ExtraHosts, NetworkMode: enum(cf.NetworkMode)}
	if !cf.Privileged {
		h.ExtraCapabilities = cf.ExtraCapabilities
	}
	c.IOConfig = &model.IOConfig{OpenStdin: cf.OpenStdin, Tty: cf.Tty}
	for _, m := range cf.MountPoints {
		prop := enum(m.PropagationMode)
		switch prop {
		case "rprivate", "private", "rshared", "shared", "rslave", "slave":
		default:
			prop = "rprivate"
		}
		c.Mounts = append(c.Mounts, model.MountPoint{Source: m.Source, Destination: m.Destination, PropagationMode: prop})
	}
	if cf.Decryption != nil {
		c.Image.DecryptConfig = &model.DecryptConfig{Keys: cf.Decryption.Keys, Recipients: cf.Decryption.Recipients}
	}
	for _, d := range cf.Devices {
		h.Devices = append(h.Devices, model.DeviceMapping{PathOnHost: d.PathOnHost, PathInContainer: d.PathInContainer, CgroupPermissions: d.CgroupPermissions})
	}
	if rp := cf.RestartPolicy; rp != nil {
		h.RestartPolicy = &model.RestartPolicy{Type: enum(rp.Type), MaximumRetryCount: rp.MaxRetryCount, RetryTimeout: time.Duration(rp.RetryTimeout) * time.Second}
	}
	for _, p := range cf.PortMappings {
		h.PortMappings = append(h.PortMappings, model.PortMapping{Proto: p.Proto, HostPort: uint16(p.HostPort), HostPortEnd: uint16(p.HostPortEnd), ContainerPort: uint16(p.ContainerPort), HostIP: p.HostIP})
	}
	if l := cf.Log; l != nil {
		h.LogConfig = &model.LogConfiguration{
			DriverConfig: &model.LogDriverConfiguration{Type: enum(l.Type), MaxFiles: l.MaxFiles, MaxSize: l.MaxSize, RootDir: l.RootDir},
			ModeConfig:   &model.LogModeConfiguration{Mode: enum(l.Mode), MaxBufferSize: l.MaxBufferSize},
		}
	}
	if r := cf.Resources; r != nil {
		h.Resources = &model.Resources{Memory: r.Memory, MemoryReservation: r.MemoryReservation, MemorySwap: r.MemorySwap}
	}
	c.HostConfig = h
}

func fromModel(c *model.Container) *config {
	cf := &config{DomainName: c.DomainName, HostName: c.HostName}
	if c.Config != nil {
		cf.Env, cf.Cmd = c.Config.Env, c.Config.Cmd
	}
	if c.IOConfig != nil {
		cf.OpenStdin, cf.Tty = c.IOConfig.OpenStdin, c.IOConfig.Tty
	}
	for _, m := range c.Mounts {
		cf.MountPoints = append(cf.MountPoints, mountPoint{Source: m.Source, Destination: m.Destination, PropagationMode: upper(m.PropagationMode)})
	}
	if d := c.Image.DecryptConfig; d != nil {
		cf.Decryption = &decryption{Keys: d.Keys, Recipients: d.Recipients}
	}
	h := c.HostConfig
	if h == nil {
		return cf
	}
	cf.Privileged, cf.ExtraHosts, cf.ExtraCapabilities, cf.NetworkMode = h.Privileged, h.ExtraHosts, h.ExtraCapabilities, upper(h.NetworkMode)
	for _, d := range h.Devices {
		cf.Devices = append(cf.Devices, device{PathOnHost: d.PathOnHost, PathInContainer: d.PathInContainer, CgroupPermissions: d.CgroupPermissions})
	}
	if rp := h.RestartPolicy; rp != nil {
		cf.RestartPolicy = &restartPolicy{Type: upper(rp.Type), MaxRetryCount: rp.MaximumRetryCount, RetryTimeout: int64(rp.RetryTimeout / time.Second)}
	}
	for _, p := range h.PortMappings {
		cf.PortMappings = append(cf.PortMappings, portMapping{Proto: p.Proto, HostPort: int(p.HostPort), HostPortEnd: int(p.HostPortEnd), ContainerPort: int(p.ContainerPort), HostIP: p.HostIP})
	}
	if l := h.LogConfig; l != nil && l.DriverConfig != nil {
		cf.Log = &logConfig{Type: upper(l.DriverConfig.Type), MaxFiles: l.DriverConfig.MaxFiles, MaxSize: l.DriverConfig.MaxSize, RootDir: l.DriverConfig.RootDir}
		if l.ModeConfig != nil {
			cf.Log.Mode, cf.Log.MaxBufferSize = upper(l.ModeConfig.Mode), l.ModeConfig.MaxBufferSize
		}
	}
	if r := h.Resources; r != nil {
		cf.Resources = &resources{Memory: r.Memory, MemoryReservation: r.MemoryReservation, MemorySwap: r.MemorySwap}
	}
	return cf
}

// state is the twin's status/state.
type state struct {
	Status     string `json:"status"`
	Pid        int64  `json:"pid"`
	Error      string `json:"error,omitempty"`
	ExitCode   int64  `json:"exitCode"`
	StartedAt  string `json:"startedAt,omitempty"`
	FinishedAt string `json:"finishedAt,omitempty"`
	OOMKilled  bool   `json:"oomKilled"`
}

func stateOf(c *model.Container) state {
	s := c.State
	if s == nil {
		return state{Status: "UNKNOWN"}
	}
	return state{Status: strings.ToUpper(s.Status.String()), Pid: s.Pid, Error: s.Error, ExitCode: s.ExitCode, StartedAt: s.StartedAt, FinishedAt: s.FinishedAt, OOMKilled: s.OOMKilled}
}

// status is the Container feature's status property.
type status struct {
	Name      string  `json:"name"`
	ImageRef  string  `json:"imageRef"`
	CreatedAt string  `json:"createdAt"`
	Config    *config `json:"config"`
	State     state   `json:"state"`
}

func statusOf(c *model.Container) status {
	return status{Name: c.Name, ImageRef: c.Image.Name, CreatedAt: c.Created, Config: fromModel(c), State: stateOf(c)}
}

// feature is a Ditto feature with a definition and properties.
type feature struct {
	Definition []string       `json:"definition"`
	Properties map[string]any `json:"properties,omitempty"`
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
