// Package slot describes a device's A/B slots (the slots file of
// firmware/FORMAT.md §4), finds the booted slot from the kernel command
// line, and keeps the slot status record.
package slot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kantofw/kanto/firmware/bootenv"
)

// Sentinel error categories.
var (
	// ErrConfig: the slots file is missing or invalid.
	ErrConfig = errors.New("invalid slots configuration")
	// ErrUnknownBoot: the booted slot cannot be determined.
	ErrUnknownBoot = errors.New("booted slot unknown")
	// ErrBootedSlot: a write would touch the booted slot.
	ErrBootedSlot = errors.New("refusing to write the booted slot")
	// ErrNoSlot: the target group has no slot of a class.
	ErrNoSlot = errors.New("no such slot")
)

// Bootloaders.
const (
	BootloaderGrub  = "grub"
	BootloaderUBoot = "uboot"
)

// Slot is one slot device: a class (rootfs, boot) in a group (A or B).
type Slot struct {
	Name      string `json:"name"`
	Class     string `json:"class"`
	Device    string `json:"device"`
	PartUUID  string `json:"partuuid,omitempty"`
	PartLabel string `json:"partlabel,omitempty"`
	Label     string `json:"label,omitempty"`
	UUID      string `json:"uuid,omitempty"`
	Size      int64  `json:"size,omitempty"`
}

// Config is the slots file.
type Config struct {
	Compatible   string `json:"compatible"`
	Bootloader   string `json:"bootloader"`
	GrubEnv      string `json:"grubenv,omitempty"`
	UBootConfig  string `json:"ubootConfig,omitempty"`
	BootAttempts int    `json:"bootAttempts,omitempty"`
	StateDir     string `json:"stateDir"`
	Cmdline      string `json:"cmdline,omitempty"`
	Slots        []Slot `json:"slots"`
	// Downgrade is the installer's policy for a bundle older than the
	// running version: DowngradeAllow (default) or DowngradeRefuse.
	Downgrade string `json:"downgrade,omitempty"`
	// BaseVersion is the version of a booted slot whose status record has
	// none (the factory image), for the downgrade check.
	BaseVersion string `json:"baseVersion,omitempty"`
}

// Downgrade policies (slots file key "downgrade").
const (
	DowngradeAllow  = "allow"
	DowngradeRefuse = "refuse"
)

// Load reads and validates a slots file. Relative paths in it are taken
// relative to the file's directory.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("slots file: %w: %w", err, ErrConfig)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.resolve(filepath.Dir(path))
	return c, nil
}

// Parse decodes and validates slots file bytes.
func Parse(data []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrConfig)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) resolve(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.GrubEnv)
	abs(&c.UBootConfig)
	abs(&c.StateDir)
	abs(&c.Cmdline)
	for i := range c.Slots {
		abs(&c.Slots[i].Device)
	}
}

// Validate checks the slots file rules.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf(format+": %w", append(args, ErrConfig)...)
	}
	if c.Compatible == "" {
		return bad("compatible is empty")
	}
	switch c.Bootloader {
	case BootloaderGrub:
		if c.GrubEnv == "" {
			return bad("bootloader grub needs grubenv")
		}
	case BootloaderUBoot:
		if c.UBootConfig == "" {
			return bad("bootloader uboot needs ubootConfig")
		}
	default:
		return bad("bootloader %q, want grub or uboot", c.Bootloader)
	}
	if c.StateDir == "" {
		return bad("stateDir is empty")
	}
	switch c.Downgrade {
	case "", DowngradeAllow, DowngradeRefuse:
	default:
		return bad("downgrade %q, want allow or refuse", c.Downgrade)
	}
	seen := map[string]bool{}
	classes := map[string]int{}
	for _, s := range c.Slots {
		if s.Name != bootenv.SlotA && s.Name != bootenv.SlotB {
			return bad("slot name %q, want A or B", s.Name)
		}
		if s.Class == "" || s.Device == "" {
			return bad("slot %s needs class and device", s.Name)
		}
		key := s.Class + "." + s.Name
		if seen[key] {
			return bad("duplicate slot %s", key)
		}
		seen[key] = true
		classes[s.Class]++
	}
	if !seen["rootfs.A"] || !seen["rootfs.B"] {
		return bad("rootfs slots A and B are required")
	}
	for cl, n := range classes {
		if n != 2 {
			return bad("class %s has %d slots, want A and B", cl, n)
		}
	}
	return nil
}

// Get returns the slot of class in group name.
func (c *Config) Get(class, name string) (Slot, error) {
	for _, s := range c.Slots {
		if s.Class == class && s.Name == name {
			return s, nil
		}
	}
	return Slot{}, fmt.Errorf("%s.%s: %w", class, name, ErrNoSlot)
}

// Group returns all slots of group name.
func (c *Config) Group(name string) []Slot {
	var out []Slot
	for _, s := range c.Slots {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// Scheme returns the boot scheme of the configured bootloader.
func (c *Config) Scheme() (bootenv.Scheme, bootenv.Store, error) {
	switch c.Bootloader {
	case BootloaderGrub:
		s := bootenv.NewGrubEnv(c.GrubEnv)
		return bootenv.NewGrubScheme(s), s, nil
	case BootloaderUBoot:
		s, err := bootenv.OpenUBootEnv(c.UBootConfig)
		if err != nil {
			return nil, nil, err
		}
		return bootenv.NewUBootScheme(s, c.BootAttempts), s, nil
	}
	return nil, nil, fmt.Errorf("bootloader %q: %w", c.Bootloader, ErrConfig)
}

// CmdlinePath is where the kernel command line is read from.
func (c *Config) CmdlinePath() string {
	if c.Cmdline == "" {
		return "/proc/cmdline"
	}
	return c.Cmdline
}

// Booted returns the name (A or B) of the booted slot group: kanto.slot=
// on the command line, else root= matched against the rootfs slots.
func (c *Config) Booted() (string, error) {
	data, err := os.ReadFile(c.CmdlinePath())
	if err != nil {
		return "", fmt.Errorf("kernel command line: %w: %w", err, ErrUnknownBoot)
	}
	return c.BootedFromCmdline(string(data))
}

// BootedFromCmdline is Booted for a given command line.
func (c *Config) BootedFromCmdline(cmdline string) (string, error) {
	var root string
	for _, f := range strings.Fields(cmdline) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "kanto.slot":
			if v == bootenv.SlotA || v == bootenv.SlotB {
				return v, nil
			}
			return "", fmt.Errorf("kanto.slot=%q: %w", v, ErrUnknownBoot)
		case "root":
			root = strings.Trim(v, `"`)
		}
	}
	if root == "" {
		return "", fmt.Errorf("no kanto.slot= or root= on the command line: %w", ErrUnknownBoot)
	}
	for _, s := range c.Slots {
		if s.Class == "rootfs" && matchRoot(s, root) {
			return s.Name, nil
		}
	}
	return "", fmt.Errorf("root=%s matches no rootfs slot: %w", root, ErrUnknownBoot)
}

func matchRoot(s Slot, root string) bool {
	k, v, ok := strings.Cut(root, "=")
	if ok {
		switch strings.ToUpper(k) {
		case "PARTUUID":
			return s.PartUUID != "" && strings.EqualFold(s.PartUUID, v)
		case "PARTLABEL":
			return s.PartLabel != "" && s.PartLabel == v
		case "LABEL":
			return s.Label != "" && s.Label == v
		case "UUID":
			return s.UUID != "" && strings.EqualFold(s.UUID, v)
		}
		return false
	}
	return SameDevice(s.Device, root)
}

// SameDevice reports whether two paths name the same device or file, after
// resolving symlinks (and comparing device numbers when both exist).
func SameDevice(a, b string) bool {
	if a == b {
		return true
	}
	ra, errA := filepath.EvalSymlinks(a)
	rb, errB := filepath.EvalSymlinks(b)
	if errA == nil && errB == nil && ra == rb {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}
