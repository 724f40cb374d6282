// Package model is the container configuration and state of the container
// management service, in the JSON form upstream persists and accepts in
// deployment descriptors and `kanto-cm create -f`: snake_case keys,
// restart_policy.retry_timeout in nanoseconds and state.status as an integer.
// It also holds the defaults, validation rules (with upstream's messages),
// string formats and the update-action comparison.
package model

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Container is one managed container. Field order and omitempty follow
// upstream, so `kanto-cm get` prints the same JSON.
type Container struct {
	ID                        string                  `json:"container_id"`
	Name                      string                  `json:"container_name"`
	Image                     Image                   `json:"image"`
	DomainName                string                  `json:"domain_name"`
	HostName                  string                  `json:"host_name"`
	ResolvConfPath            string                  `json:"resolv_conf_path,omitempty"`
	HostsPath                 string                  `json:"hosts_path,omitempty"`
	HostnamePath              string                  `json:"hostname_path,omitempty"`
	Mounts                    []MountPoint            `json:"mount_points"`
	Hooks                     []Hook                  `json:"hooks"`
	Config                    *ContainerConfiguration `json:"config"`
	HostConfig                *HostConfig             `json:"host_config"`
	IOConfig                  *IOConfig               `json:"io_config"`
	NetworkSettings           *NetworkSettings        `json:"network_settings"`
	State                     *State                  `json:"state"`
	Created                   string                  `json:"created,omitempty"`
	RestartCount              int                     `json:"restart_count"`
	ManuallyStopped           bool                    `json:"manually_stopped"`
	StartedSuccessfullyBefore bool                    `json:"started_successfully_before"`
}

// Image names the image and how to decrypt it.
type Image struct {
	Name          string         `json:"name"`
	DecryptConfig *DecryptConfig `json:"decrypt_config,omitempty"`
}

// DecryptConfig holds ocicrypt keys (path[:password]) and recipients.
type DecryptConfig struct {
	Keys       []string `json:"keys,omitempty"`
	Recipients []string `json:"recipients,omitempty"`
}

// MountPoint is a bind mount.
type MountPoint struct {
	Destination     string `json:"destination"`
	Source          string `json:"source"`
	PropagationMode string `json:"propagation_mode"`
}

// HookType is when an OCI hook runs.
type HookType int

// Hook types, numbered as upstream persists them.
const (
	HookPrestart HookType = iota
	HookPoststart
	HookPoststop
)

// Hook is an OCI hook.
type Hook struct {
	Path    string   `json:"path"`
	Args    []string `json:"args"`
	Env     []string `json:"env"`
	Timeout int      `json:"timeout"`
	Type    HookType `json:"type"`
}

// HostConfig is the host-side configuration.
type HostConfig struct {
	Devices           []DeviceMapping   `json:"devices"`
	NetworkMode       string            `json:"network_mode"`
	Privileged        bool              `json:"privileged"`
	RestartPolicy     *RestartPolicy    `json:"restart_policy"`
	Runtime           string            `json:"runtime"`
	ExtraHosts        []string          `json:"extra_hosts"`
	ExtraCapabilities []string          `json:"extra_capabilities"`
	PortMappings      []PortMapping     `json:"port_mappings"`
	LogConfig         *LogConfiguration `json:"log_config"`
	Resources         *Resources        `json:"resources"`
}

// Network modes.
const (
	NetworkBridge = "bridge"
	NetworkHost   = "host"
)

// DeviceMapping exposes a host device.
type DeviceMapping struct {
	PathOnHost        string `json:"path_on_host"`
	PathInContainer   string `json:"path_in_container"`
	CgroupPermissions string `json:"cgroup_permissions"`
}

// PortMapping publishes container ports on the host.
type PortMapping struct {
	Proto         string `json:"proto"`
	ContainerPort uint16 `json:"container_port"`
	HostIP        string `json:"host_ip"`
	HostPort      uint16 `json:"host_port"`
	HostPortEnd   uint16 `json:"host_port_end"`
}

// Restart policy types.
const (
	RestartNo            = "no"
	RestartAlways        = "always"
	RestartUnlessStopped = "unless-stopped"
	RestartOnFailure     = "on-failure"
)

// RestartPolicy says when an exited container is started again.
// RetryTimeout is a Go duration, persisted as integer nanoseconds.
type RestartPolicy struct {
	MaximumRetryCount int           `json:"maximum_retry_count"`
	RetryTimeout      time.Duration `json:"retry_timeout"`
	Type              string        `json:"type"`
}

// Resources are memory limits, as size strings (e.g. "200M").
type Resources struct {
	Memory            string `json:"memory"`
	MemoryReservation string `json:"memory_reservation"`
	MemorySwap        string `json:"memory_swap"`
}

// Log drivers and modes.
const (
	LogDriverJSONFile = "json-file"
	LogDriverNone     = "none"
	LogModeBlocking   = "blocking"
	LogModeNonBlock   = "non-blocking"
)

// LogConfiguration is the container's log driver and mode.
type LogConfiguration struct {
	DriverConfig *LogDriverConfiguration `json:"driver_config"`
	ModeConfig   *LogModeConfiguration   `json:"mode_config"`
}

// LogDriverConfiguration configures the json-file driver.
type LogDriverConfiguration struct {
	Type     string `json:"type"`
	MaxFiles int    `json:"max_files"`
	MaxSize  string `json:"max_size"`
	RootDir  string `json:"root_dir"`
}

// LogModeConfiguration is blocking or non-blocking with a buffer.
type LogModeConfiguration struct {
	Mode          string `json:"mode"`
	MaxBufferSize string `json:"max_buffer_size"`
}

// IOConfig is the container's standard IO set-up.
type IOConfig struct {
	AttachStderr bool `json:"attach_stderr"`
	AttachStdin  bool `json:"attach_stdin"`
	AttachStdout bool `json:"attach_stdout"`
	OpenStdin    bool `json:"open_stdin"`
	StdinOnce    bool `json:"stdin_once"`
	Tty          bool `json:"tty"`
}

// ContainerConfiguration overrides the image's env and cmd.
type ContainerConfiguration struct {
	Env []string `json:"env"`
	Cmd []string `json:"cmd"`
}

// NetworkSettings is runtime network data.
type NetworkSettings struct {
	Networks            map[string]*EndpointSettings `json:"networks"`
	SandboxID           string                       `json:"sandbox_id,omitempty"`
	SandboxKey          string                       `json:"sandbox_key,omitempty"`
	NetworkControllerID string                       `json:"network_controller_id,omitempty"`
}

// EndpointSettings is one network attachment.
type EndpointSettings struct {
	ID         string `json:"id"`
	Gateway    string `json:"gateway"`
	IPAddress  string `json:"ip_address"`
	MacAddress string `json:"mac_address"`
	NetworkID  string `json:"network_id"`
}

// Status is a container's lifecycle status; persisted as an integer.
type Status int

// Statuses, numbered as upstream persists them.
const (
	Creating Status = iota
	Created
	Running
	Stopped
	Paused
	Exited
	Dead
	Unknown
)

var statusNames = [...]string{"Creating", "Created", "Running", "Stopped", "Paused", "Exited", "Dead", "Unknown"}

func (s Status) String() string {
	if s < 0 || int(s) >= len(statusNames) {
		return "Unknown"
	}
	return statusNames[s]
}

// ParseStatus maps a status name (any case) to a Status; Unknown otherwise.
func ParseStatus(s string) Status {
	for i, n := range statusNames {
		if strings.EqualFold(n, s) {
			return Status(i)
		}
	}
	return Unknown
}

// State is the runtime state of a container.
type State struct {
	Pid        int64  `json:"pid"`
	StartedAt  string `json:"started_at"`
	Error      string `json:"error"`
	ExitCode   int64  `json:"exit_code"`
	FinishedAt string `json:"finished_at"`
	Exited     bool   `json:"exited"`
	Dead       bool   `json:"dead"`
	Restarting bool   `json:"restarting"`
	Paused     bool   `json:"paused"`
	Running    bool   `json:"running"`
	OOMKilled  bool   `json:"oomKilled"`
	Status     Status `json:"status"`
}

// StopOptions control how a container is stopped. Timeout is in seconds.
type StopOptions struct {
	Timeout int64  `json:"timeout"`
	Force   bool   `json:"force"`
	Signal  string `json:"signal"`
}

// UpdateOptions are the runtime changes Update accepts.
type UpdateOptions struct {
	RestartPolicy *RestartPolicy `json:"restart_policy"`
	Resources     *Resources     `json:"resources"`
}

// Clone returns a deep copy through JSON (the model is plain data).
func (c *Container) Clone() *Container {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("model: marshal container: %v", err))
	}
	out := new(Container)
	if err := json.Unmarshal(b, out); err != nil {
		panic(fmt.Sprintf("model: unmarshal container: %v", err))
	}
	return out
}

// TimeFormat is how timestamps are written (RFC 3339 with nanoseconds, UTC).
const TimeFormat = time.RFC3339Nano

// Now formats t the way the model stores timestamps.
func Now(t time.Time) string { return t.UTC().Format(TimeFormat) }
