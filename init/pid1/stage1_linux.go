package pid1

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/kantofw/kanto/init/event"
	"github.com/kantofw/kanto/init/initcfg"
	"github.com/kantofw/kanto/init/kmod"
	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"
)

// Initramfs layout written by the image build.
const (
	// InitramfsMarker exists only in the initramfs; its presence selects
	// stage 1.
	InitramfsMarker = "/etc/kanto-initramfs"
	// ModulesDir holds the modules at their modules.dep paths.
	ModulesDir = "/lib/modules"
	// ModulesList lists the module paths (relative to ModulesDir) in load
	// order, one a line.
	ModulesList = "/etc/kanto-modules"
	// SlotInit is the init executed in the slot's root.
	SlotInit = "/sbin/init"
)

// IsStage1 reports whether the init runs from the initramfs.
func IsStage1() bool {
	_, err := os.Stat(InitramfsMarker)
	return err == nil
}

// Stage1 loads the modules, mounts the root named by root= read-only and
// executes the slot's init in it. It returns only on failure.
func Stage1(ctx context.Context, log *slog.Logger, con *Console) error {
	if err := mountBasics(false); err != nil {
		return err
	}
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	cmd := initcfg.ParseCmdline(string(raw))
	mods, err := readList(ModulesList)
	if err != nil {
		return err
	}
	if err := kmod.Load(log, ModulesDir, mods); err != nil {
		// Keep going: the root device may still be there.
		log.Error("loading modules", "err", err)
	}
	if cmd.Root == "" {
		return fmt.Errorf("no root= on the kernel command line: %w", ErrNoDevice)
	}
	dev, err := resolveDevice(ctx, cmd.Root, 15*time.Second)
	if err != nil {
		return err
	}
	const newRoot = "/sysroot"
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(dev, newRoot, cmd.RootFSType, unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", dev, cmd.RootFSType, newRoot, err)
	}
	con.Event(event.Stage1, "root", dev, "fstype", cmd.RootFSType, "modules", fmt.Sprint(len(mods)))
	return mount.SwitchRoot(newRoot, SlotInit)
}

func readList(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}
