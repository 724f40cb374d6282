// Package board knows the boards Kanto runs on: a profile per board (slot
// devices, bootloader and its environment) and the hooks a device maker
// can override with executables in a directory: reboot, identity,
// slot-devices and bootloader.
package board

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/kantofw/kanto/firmware/slot"
)

// ErrUnknownBoard: no profile of that name.
var ErrUnknownBoard = errors.New("unknown board")

// Profile describes a board family.
type Profile struct {
	Name        string      `json:"name"`
	Bootloader  string      `json:"bootloader"`
	GrubEnv     string      `json:"grubenv,omitempty"`
	UBootConfig string      `json:"ubootConfig,omitempty"`
	Slots       []slot.Slot `json:"slots,omitempty"`
	StateDir    string      `json:"stateDir"`
}

// DefaultStateDir holds the slot status record and the OTA database.
const DefaultStateDir = "/var/lib/kanto/firmware"

var profiles = map[string]Profile{
	// The QEMU test image: GPT on a virtio disk, ESP (1) with GRUB and
	// grubenv in /EFI/BOOT, rootfs A (2) and B (3).
	"qemu-x86_64": {
		Name: "qemu-x86_64", Bootloader: slot.BootloaderGrub, GrubEnv: "/boot/efi/EFI/BOOT/grubenv", StateDir: DefaultStateDir,
		Slots: []slot.Slot{
			{Name: "A", Class: "rootfs", Device: "/dev/vda2", PartLabel: "rootfsA"},
			{Name: "B", Class: "rootfs", Device: "/dev/vda3", PartLabel: "rootfsB"},
		},
	},
	// Raspberry Pi 4 (64 bit) with U-Boot: boot (1, FAT, U-Boot + boot.scr +
	// env), rootfs A (2) and B (3), data (4); redundant env per
	// /etc/fw_env.config.
	"raspberrypi4-64": {
		Name: "raspberrypi4-64", Bootloader: slot.BootloaderUBoot, UBootConfig: "/etc/fw_env.config", StateDir: DefaultStateDir,
		Slots: []slot.Slot{
			{Name: "A", Class: "rootfs", Device: "/dev/mmcblk0p2"},
			{Name: "B", Class: "rootfs", Device: "/dev/mmcblk0p3"},
		},
	},
	// Anything else: slots from the slot-devices hook, bootloader from the
	// bootloader hook or detected (fw_env.config means U-Boot).
	"generic": {Name: "generic", StateDir: DefaultStateDir},
}

// Lookup returns the profile of name.
func Lookup(name string) (Profile, error) {
	p, ok := profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("%q (known: %v): %w", name, Names(), ErrUnknownBoard)
	}
	p.Slots = slices.Clone(p.Slots)
	return p, nil
}

// Names lists the known profiles.
func Names() []string {
	var out []string
	for n := range profiles {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// SlotsConfig resolves the hooks and returns the slots file content for
// this board (compatible = the profile name).
func (p Profile) SlotsConfig(h *Hooks) (*slot.Config, error) {
	c := &slot.Config{Compatible: p.Name, Bootloader: p.Bootloader, GrubEnv: p.GrubEnv, UBootConfig: p.UBootConfig, StateDir: p.StateDir, Slots: p.Slots}
	if h != nil {
		if s, ok, err := h.SlotDevices(); err != nil {
			return nil, err
		} else if ok {
			c.Slots = s
		}
		if bl, ok, err := h.Bootloader(); err != nil {
			return nil, err
		} else if ok {
			c.Bootloader = bl
		}
	}
	if c.Bootloader == "" {
		c.Bootloader = detectBootloader(h)
	}
	switch c.Bootloader {
	case slot.BootloaderUBoot:
		if c.UBootConfig == "" {
			c.UBootConfig = "/etc/fw_env.config"
		}
	case slot.BootloaderGrub:
		if c.GrubEnv == "" {
			c.GrubEnv = "/boot/efi/EFI/BOOT/grubenv"
			if _, err := os.Stat(h.path("/boot/grub/grubenv")); err == nil {
				c.GrubEnv = "/boot/grub/grubenv"
			}
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func detectBootloader(h *Hooks) string {
	if _, err := os.Stat(h.path("/etc/fw_env.config")); err == nil {
		return slot.BootloaderUBoot
	}
	return slot.BootloaderGrub
}
