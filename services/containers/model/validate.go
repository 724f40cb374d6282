package model

import (
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

var (
	nameRe      = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.-]*$`)
	envRe       = regexp.MustCompile(`^[a-zA-Z_]([a-zA-Z0-9_]*)(|=(.*))$`)
	hostIPKeyRe = regexp.MustCompile(`^(.+):host_ip(_(.+))?$`)
)

var propagationModes = map[string]bool{
	"rprivate": true, "private": true, "rshared": true, "shared": true, "rslave": true, "slave": true,
}

// Validate checks a container description with upstream's rules and
// messages. It expects FillDefaults to have run.
func Validate(c *Container) error {
	if c.Image.Name == "" {
		return invalidf("the containers image configuration is invalid")
	}
	if err := ValidateName(c.Name); err != nil {
		return err
	}
	for _, m := range c.Mounts {
		if m.Source == "" || m.Destination == "" {
			return invalidf("source and destination must be set for a mount point")
		}
		if !propagationModes[m.PropagationMode] {
			return invalidf("propagation mode must be set to one of the supported modes")
		}
	}
	h := c.HostConfig
	if h == nil {
		return invalidf("the containers host config is mandatory and is missing")
	}
	if c.IOConfig == nil {
		return invalidf("the container's IO config is missing")
	}
	if h.Privileged && h.Devices != nil {
		return invalidf("cannot create the container as privileged and with specified devices at the same time - choose one of the options")
	}
	if h.Privileged && h.ExtraCapabilities != nil {
		return invalidf("cannot create the container as privileged and with specified extra capabilities at the same time - choose one of the options")
	}
	switch h.NetworkMode {
	case "":
		return invalidf("network mode is not set")
	case NetworkBridge:
	case NetworkHost:
		if len(h.PortMappings) > 0 {
			return invalidf("cannot use port mappings when in host network mode")
		}
		for _, e := range h.ExtraHosts {
			if hostIPKeyRe.MatchString(e) {
				return invalidf("cannot use the host_ip reserved key or any of its modifications when in host network mode")
			}
		}
	default:
		return invalidf("unsupported network mode %s", h.NetworkMode)
	}
	for _, d := range h.Devices {
		if d.PathOnHost == "" || d.PathInContainer == "" {
			return invalidf("both path on host and path in container must be set for device mapping")
		}
		if d.CgroupPermissions == "" {
			return invalidf("the cgroup permissions for device mapping %s:%s are not provided", d.PathOnHost, d.PathInContainer)
		}
	}
	for _, p := range h.PortMappings {
		if p.ContainerPort == 0 || p.HostPort == 0 {
			return invalidf("invalid port mapping %s", p.String())
		}
		if p.HostPortEnd != 0 && p.HostPortEnd < p.HostPort {
			return invalidf("invalid port mapping %s", p.String())
		}
		if p.Proto != "" && p.Proto != "tcp" && p.Proto != "udp" && p.Proto != "sctp" {
			return invalidf("unsupported protocol %s for port mapping", p.Proto)
		}
	}
	if err := validateLog(h.LogConfig); err != nil {
		return err
	}
	if err := ValidateRestartPolicy(h.RestartPolicy); err != nil {
		return err
	}
	if err := ValidateResources(h.Resources); err != nil {
		return err
	}
	if c.Config != nil {
		for _, e := range c.Config.Env {
			if !envRe.MatchString(e) {
				return invalidf("invalid environmental variable declaration provided : %s", e)
			}
		}
	}
	return nil
}

// ValidateName checks a (non-empty) container name's format.
func ValidateName(name string) error {
	if name != "" && !nameRe.MatchString(name) {
		return invalidf("invalid container name format : %s", name)
	}
	return nil
}

func validateLog(l *LogConfiguration) error {
	if l == nil || l.DriverConfig == nil {
		return nil
	}
	d := l.DriverConfig
	switch d.Type {
	case LogDriverJSONFile:
		if d.MaxFiles < 1 {
			return invalidf("max log files cannot be < 1")
		}
		if d.MaxSize == "" {
			return invalidf("max logs size must be set")
		}
		if _, err := ParseSize(d.MaxSize); err != nil {
			return invalidf("invalid format of max logs size - %s", d.MaxSize)
		}
	case LogDriverNone:
	default:
		return invalidf("unsupported log driver configuration")
	}
	if m := l.ModeConfig; m != nil {
		switch m.Mode {
		case LogModeBlocking:
		case LogModeNonBlock:
			if _, err := ParseSize(m.MaxBufferSize); err != nil {
				return invalidf("invalid format of max buffer size - %s", m.MaxBufferSize)
			}
		default:
			return invalidf("unsupported log mode configuration")
		}
	}
	return nil
}

// ValidateRestartPolicy checks the policy type and its counters.
func ValidateRestartPolicy(rp *RestartPolicy) error {
	if rp == nil {
		return nil
	}
	switch rp.Type {
	case RestartOnFailure:
		if rp.MaximumRetryCount < 0 {
			return invalidf("the max retry count for the restart policy cannot be < 0")
		}
		if rp.RetryTimeout < 0 {
			return invalidf("the retry timeout for the restart policy cannot be < 0")
		}
	case RestartNo, RestartAlways, RestartUnlessStopped:
		if rp.MaximumRetryCount != 0 {
			return invalidf("cannot use max retry count when the restart policy is %s", rp.Type)
		}
	default:
		return invalidf("unsupported restart policy type %s", rp.Type)
	}
	return nil
}

// MinMemory is the smallest memory limit accepted (3 MiB).
const MinMemory = 3 * 1024 * 1024

// ValidateResources checks the memory sizes and their relations.
func ValidateResources(r *Resources) error {
	if r == nil {
		return nil
	}
	var mem, res, swap int64
	var err error
	if r.Memory != "" {
		if mem, err = ParseSize(r.Memory); err != nil {
			return invalidf("invalid format of memory - %s", r.Memory)
		}
		if mem > 0 && mem < MinMemory {
			return invalidf("minimum memory allowed is 3M")
		}
	}
	if r.MemoryReservation != "" {
		if res, err = ParseSize(r.MemoryReservation); err != nil {
			return invalidf("invalid format of memory reservation - %s", r.MemoryReservation)
		}
	}
	if r.MemorySwap != "" && r.MemorySwap != "-1" {
		if swap, err = ParseSize(r.MemorySwap); err != nil {
			return invalidf("invalid format of memory swap - %s", r.MemorySwap)
		}
	}
	if swap > 0 {
		if r.Memory == "" {
			return invalidf("swap memory - %s, memory must be set as well", r.MemorySwap)
		}
		if swap < mem {
			return invalidf("swap memory - %s is less than memory - %s", r.MemorySwap, r.Memory)
		}
	}
	if res > 0 && r.Memory != "" && res > mem {
		return invalidf("reservation memory - %s must be lower than memory - %s", r.MemoryReservation, r.Memory)
	}
	return nil
}

// ParseSignal resolves a signal name (SIGTERM, TERM) or number to 1..255.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 255 {
			return 0, invalidf("invalid signal = %s", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, invalidf("invalid signal = %s", s)
}

// ValidateStopOptions checks a stop request's timeout and signal.
func ValidateStopOptions(o *StopOptions) error {
	if o == nil {
		return nil
	}
	if o.Timeout < 0 {
		return invalidf("the timeout = %d shouldn't be negative", o.Timeout)
	}
	if o.Signal != "" {
		if _, err := ParseSignal(o.Signal); err != nil {
			return err
		}
	}
	return nil
}
