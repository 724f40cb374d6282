// Package initcfg is the configuration of the image's init: what to mount,
// how to bring up the network, which services to supervise, and how to
// decide that a boot is healthy. The image build writes it to
// /etc/kanto/init.json inside each slot; the init reads it after switching
// to the slot's root.
//
// It also parses the kernel command line, the other input of the init.
package initcfg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kantofw/kanto/init/supervise"
)

// Path is where the init looks for its configuration inside the root.
const Path = "/etc/kanto/init.json"

// ErrInvalid marks a configuration the init cannot run with.
var ErrInvalid = errors.New("invalid init configuration")

// Config is /etc/kanto/init.json.
type Config struct {
	Hostname string  `json:"hostname,omitempty"`
	Mounts   []Mount `json:"mounts,omitempty"`
	// Dirs are created (with parents) after the mounts, e.g. state
	// directories on the data partition.
	Dirs     []string  `json:"dirs,omitempty"`
	Network  Network   `json:"network"`
	Services []Service `json:"services"`
	Health   Health    `json:"health"`
	Watchdog Watchdog  `json:"watchdog"`
}

// Mount is one filesystem the init mounts. Device is a /dev path or
// PARTLABEL=name. Optional mounts that fail are logged, not fatal.
type Mount struct {
	Device   string `json:"device"`
	Path     string `json:"path"`
	FSType   string `json:"fstype"`
	Options  string `json:"options,omitempty"`
	ReadOnly bool   `json:"readOnly,omitempty"`
	Optional bool   `json:"optional,omitempty"`
}

// Network configures the first Ethernet interface. With DHCP the init asks
// for a lease and falls back to the static address when none comes.
type Network struct {
	Interface string   `json:"interface,omitempty"` // default eth0
	DHCP      bool     `json:"dhcp,omitempty"`
	Address   string   `json:"address,omitempty"` // CIDR, e.g. 10.0.2.15/24
	Gateway   string   `json:"gateway,omitempty"`
	DNS       []string `json:"dns,omitempty"`
	// TimeoutSec bounds DHCP (default 5).
	TimeoutSec int `json:"timeoutSec,omitempty"`
}

// Service is one supervised program, see supervise.Service.
type Service struct {
	Name        string   `json:"name"`
	Exec        []string `json:"exec"`
	Env         []string `json:"env,omitempty"`
	After       []string `json:"after,omitempty"`
	Ready       string   `json:"ready,omitempty"` // started (default), notify, tcp
	ReadyAddr   string   `json:"readyAddr,omitempty"`
	WatchdogSec int      `json:"watchdogSec,omitempty"`
}

// Health decides whether this boot is good. The boot is healthy when every
// service has been ready within TimeoutSec, stays up for SettleSec, and Command (if any) exits 0.
// Then, if the booted slot is on trial, Commit says who commits it:
// "builtin" (the init writes the boot environment through
// firmware/bootenv), or "none" (the OTA agent does it). On an unhealthy
// trial boot the init reboots after RebootDelaySec so the bootloader falls
// back; an unhealthy committed slot is only reported.
type Health struct {
	TimeoutSec int `json:"timeoutSec,omitempty"` // default 60
	// SettleSec is how long every service must then stay up without a
	// restart (default 3), so a crash loop is not mistaken for health.
	SettleSec      int      `json:"settleSec,omitempty"`
	Command        []string `json:"command,omitempty"`
	Commit         string   `json:"commit,omitempty"`  // builtin (default) or none
	GrubEnv        string   `json:"grubenv,omitempty"` // default /boot/efi/EFI/BOOT/grubenv
	RebootDelaySec int      `json:"rebootDelaySec,omitempty"`
}

// Watchdog is the hardware watchdog the init feeds while it runs.
type Watchdog struct {
	Device     string `json:"device,omitempty"` // empty: no watchdog
	TimeoutSec int    `json:"timeoutSec,omitempty"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Network.Interface == "" {
		c.Network.Interface = "eth0"
	}
	if c.Network.TimeoutSec <= 0 {
		c.Network.TimeoutSec = 5
	}
	if c.Health.TimeoutSec <= 0 {
		c.Health.TimeoutSec = 60
	}
	if c.Health.SettleSec <= 0 {
		c.Health.SettleSec = 3
	}
	if c.Health.Commit == "" {
		c.Health.Commit = "builtin"
	}
	if c.Health.GrubEnv == "" {
		c.Health.GrubEnv = "/boot/efi/EFI/BOOT/grubenv"
	}
	if c.Watchdog.Device != "" && c.Watchdog.TimeoutSec <= 0 {
		c.Watchdog.TimeoutSec = 30
	}
}

// Decode reads a configuration, rejecting unknown fields, applies defaults
// and checks it.
func Decode(r io.Reader) (*Config, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data: %w", ErrInvalid)
	}
	c.Defaults()
	if err := c.Check(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Load reads path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Check validates the configuration, including the service graph.
func (c *Config) Check() error {
	for _, m := range c.Mounts {
		if m.Device == "" || !strings.HasPrefix(m.Path, "/") || m.FSType == "" {
			return fmt.Errorf("mount %+v: device, absolute path and fstype required: %w", m, ErrInvalid)
		}
	}
	for _, s := range c.Services {
		if s.Name == "" || len(s.Exec) == 0 || !strings.HasPrefix(s.Exec[0], "/") {
			return fmt.Errorf("service %q: name and exec with an absolute path required: %w", s.Name, ErrInvalid)
		}
	}
	switch c.Health.Commit {
	case "builtin", "none":
	default:
		return fmt.Errorf("health.commit %q: %w", c.Health.Commit, ErrInvalid)
	}
	if _, err := supervise.New(c.SupervisedServices(), supervise.Options{}); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// SupervisedServices converts the services for package supervise.
func (c *Config) SupervisedServices() []supervise.Service {
	out := make([]supervise.Service, 0, len(c.Services))
	for _, s := range c.Services {
		out = append(out, supervise.Service{
			Name: s.Name, Path: s.Exec[0], Args: s.Exec[1:], Env: s.Env, After: s.After,
			Ready: supervise.ReadyKind(s.Ready), ReadyAddr: s.ReadyAddr,
			Watchdog: time.Duration(s.WatchdogSec) * time.Second,
		})
	}
	return out
}

// Cmdline is the parsed kernel command line.
type Cmdline struct {
	// Slot is kanto.slot (A or B), "" when absent.
	Slot string
	// Root is root= (e.g. PARTLABEL=rootfsA or /dev/vda2).
	Root string
	// RootFSType is rootfstype= (default ext4).
	RootFSType string
	// Params holds every key=value and bare flag (value "").
	Params map[string]string
}

// ParseCmdline parses /proc/cmdline. Double quotes group values with spaces
// (key="a b"), as the kernel does.
func ParseCmdline(s string) Cmdline {
	c := Cmdline{Params: map[string]string{}, RootFSType: "ext4"}
	var fields []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if have {
				fields = append(fields, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		fields = append(fields, cur.String())
	}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		c.Params[k] = v
	}
	c.Slot = c.Params["kanto.slot"]
	c.Root = c.Params["root"]
	if t := c.Params["rootfstype"]; t != "" {
		c.RootFSType = t
	}
	return c
}
