package board

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kantofw/kanto/firmware/slot"
)

// Hook names: executables of these names in Hooks.Dir replace the built-in
// behaviour.
const (
	HookReboot      = "reboot"       // reboots the device; never expected to return 0 before the reboot
	HookIdentity    = "identity"     // prints the device id on the first line of stdout
	HookSlotDevices = "slot-devices" // prints the JSON array of slots (FORMAT.md §4 "slots")
	HookBootloader  = "bootloader"   // prints grub or uboot
)

// ErrHook: a hook executable failed or printed nonsense.
var ErrHook = errors.New("board hook failed")

// Hooks runs the board hooks.
type Hooks struct {
	// Dir holds hook executables (e.g. /etc/kanto/board.d); empty: none.
	Dir string
	// Root is the filesystem root identity and detection read from
	// (default "/"); tests point it at a fake tree.
	Root string
	// Timeout bounds a hook (default 30 s).
	Timeout time.Duration
	Log     *slog.Logger
	// sys is the reboot seam; nil means the real system calls.
	sys rebootSys
}

func (h *Hooks) path(p string) string {
	if h == nil || h.Root == "" {
		return p
	}
	return filepath.Join(h.Root, p)
}

// hook returns the path of an executable hook, or "".
func (h *Hooks) hook(name string) string {
	if h == nil || h.Dir == "" {
		return ""
	}
	p := filepath.Join(h.Dir, name)
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return ""
	}
	return p
}

// run runs hook name and returns its stdout.
func (h *Hooks) run(ctx context.Context, name string) ([]byte, bool, error) {
	p := h.hook(name)
	if p == "" {
		return nil, false, nil
	}
	timeout := h.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, p)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, true, fmt.Errorf("%s: %w: %s: %w", p, err, strings.TrimSpace(stderr.String()), ErrHook)
	}
	return stdout.Bytes(), true, nil
}

// SlotDevices returns the slots printed by the slot-devices hook (ok is
// false without a hook).
func (h *Hooks) SlotDevices() ([]slot.Slot, bool, error) {
	out, ok, err := h.run(context.Background(), HookSlotDevices)
	if !ok || err != nil {
		return nil, ok, err
	}
	var s []slot.Slot
	if err := json.Unmarshal(out, &s); err != nil {
		return nil, true, fmt.Errorf("%s output: %w: %w", HookSlotDevices, err, ErrHook)
	}
	return s, true, nil
}

// Bootloader returns the bootloader printed by the bootloader hook.
func (h *Hooks) Bootloader() (string, bool, error) {
	out, ok, err := h.run(context.Background(), HookBootloader)
	if !ok || err != nil {
		return "", ok, err
	}
	bl := strings.TrimSpace(string(out))
	if bl != slot.BootloaderGrub && bl != slot.BootloaderUBoot {
		return "", true, fmt.Errorf("%s printed %q, want grub or uboot: %w", HookBootloader, bl, ErrHook)
	}
	return bl, true, nil
}

// Reboot syncs and reboots: the reboot hook if present, else systemd's
// "systemctl reboot" when systemd runs, else the reboot system call.
func (h *Hooks) Reboot(ctx context.Context) error {
	sys := h.sys
	if sys == nil {
		sys = realReboot{}
	}
	sys.sync()
	if _, ok, err := h.run(ctx, HookReboot); ok {
		return err
	}
	if _, err := os.Stat(h.path("/run/systemd/system")); err == nil {
		if err := sys.systemctlReboot(ctx); err == nil {
			return nil
		} else if h.Log != nil {
			h.Log.Warn("systemctl reboot failed, using the reboot system call", "err", err)
		}
	}
	return sys.reboot()
}

// rebootSys is the seam over the calls that end the system.
type rebootSys interface {
	sync()
	systemctlReboot(ctx context.Context) error
	reboot() error
}
