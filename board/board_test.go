package board

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kantofw/kanto/firmware/slot"
)

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func TestProfiles(t *testing.T) {
	for _, tc := range []struct {
		name, bootloader, rootB string
	}{
		{"qemu-x86_64", "grub", "/dev/vda3"},
		{"raspberrypi4-64", "uboot", "/dev/mmcblk0p3"},
	} {
		p, err := Lookup(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.SlotsConfig(&Hooks{Root: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := c.Get("rootfs", "B")
		if c.Bootloader != tc.bootloader || b.Device != tc.rootB || c.Compatible != tc.name {
			t.Errorf("%s: %+v", tc.name, c)
		}
	}
	if _, err := Lookup("pdp11"); !errors.Is(err, ErrUnknownBoard) {
		t.Fatalf("got %v", err)
	}
	// generic without a slot-devices hook has no slots.
	g, _ := Lookup("generic")
	if _, err := g.SlotsConfig(&Hooks{Root: t.TempDir()}); !errors.Is(err, slot.ErrConfig) {
		t.Fatalf("generic without hooks: %v", err)
	}
}

func TestHookOverrides(t *testing.T) {
	root, hooks := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(root, "etc/fw_env.config"), "/dev/mmcblk0 0x3f8000 0x4000\n", 0o644)
	writeFile(t, filepath.Join(hooks, HookSlotDevices), `#!/bin/sh
echo '[{"name":"A","class":"rootfs","device":"/dev/sda5"},{"name":"B","class":"rootfs","device":"/dev/sda6"}]'
`, 0o755)
	h := &Hooks{Dir: hooks, Root: root}
	g, _ := Lookup("generic")
	c, err := g.SlotsConfig(h)
	if err != nil {
		t.Fatal(err)
	}
	want := []slot.Slot{{Name: "A", Class: "rootfs", Device: "/dev/sda5"}, {Name: "B", Class: "rootfs", Device: "/dev/sda6"}}
	if diff := cmp.Diff(want, c.Slots); diff != "" || c.Bootloader != "uboot" || c.UBootConfig != "/etc/fw_env.config" {
		t.Fatalf("bootloader %s, slots (-want +got):\n%s", c.Bootloader, diff)
	}
	// The bootloader hook wins over detection; a bad answer is an error.
	writeFile(t, filepath.Join(hooks, HookBootloader), "#!/bin/sh\necho grub\n", 0o755)
	if c, err = g.SlotsConfig(h); err != nil || c.Bootloader != "grub" {
		t.Fatalf("%v %+v", err, c)
	}
	writeFile(t, filepath.Join(hooks, HookBootloader), "#!/bin/sh\necho lilo\n", 0o755)
	if _, err = g.SlotsConfig(h); !errors.Is(err, ErrHook) {
		t.Fatalf("got %v", err)
	}
}

func TestIdentityOrder(t *testing.T) {
	root := t.TempDir()
	h := &Hooks{Root: root}
	if _, err := h.Identity(context.Background()); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("empty root: %v", err)
	}
	steps := []struct {
		path, data string
		want       Identity
	}{
		{"sys/class/net/eth0/address", "52:54:00:12:34:56\n", Identity{"52:54:00:12:34:56", SourcePrimaryMAC}},
		{"sys/class/net/wlan0/address", "aa:bb:cc:dd:ee:ff\n", Identity{"52:54:00:12:34:56", SourcePrimaryMAC}},
		{"proc/net/route", "Iface\tDestination\tGateway\nwlan0\t00000000\t0102A8C0\n", Identity{"aa:bb:cc:dd:ee:ff", SourcePrimaryMAC}},
		{"etc/machine-id", "0123abcd0123abcd0123abcd0123abcd\n", Identity{"0123abcd0123abcd0123abcd0123abcd", SourceMachineID}},
		{"sys/class/dmi/id/product_uuid", "00000000-0000-0000-0000-000000000000\n", Identity{"0123abcd0123abcd0123abcd0123abcd", SourceMachineID}},
		{"sys/class/dmi/id/product_uuid", "4C4C4544-0042-3510-8048-B4C04F564432\n", Identity{"4c4c4544-0042-3510-8048-b4c04f564432", SourceDMIUUID}},
		{"sys/class/dmi/id/product_serial", "To be filled by O.E.M.\n", Identity{"4c4c4544-0042-3510-8048-b4c04f564432", SourceDMIUUID}},
		{"sys/class/dmi/id/product_serial", "SN-42\n", Identity{"SN-42", SourceDMISerial}},
		{"proc/device-tree/serial-number", "10000000abcdef01\x00", Identity{"10000000abcdef01", SourceDTSerial}},
	}
	for _, s := range steps {
		writeFile(t, filepath.Join(root, s.path), s.data, 0o644)
		got, err := h.Identity(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got != s.want {
			t.Fatalf("after %s: got %+v, want %+v", s.path, got, s.want)
		}
	}
	hooks := t.TempDir()
	writeFile(t, filepath.Join(hooks, HookIdentity), "#!/bin/sh\necho factory-id-7\n", 0o755)
	h.Dir = hooks
	if got, err := h.Identity(context.Background()); err != nil || got != (Identity{"factory-id-7", SourceHook}) {
		t.Fatalf("hook: %+v %v", got, err)
	}
}

type fakeReboot struct{ calls []string }

func (f *fakeReboot) sync() { f.calls = append(f.calls, "sync") }
func (f *fakeReboot) systemctlReboot(context.Context) error {
	f.calls = append(f.calls, "systemctl")
	return nil
}
func (f *fakeReboot) reboot() error { f.calls = append(f.calls, "reboot(2)"); return nil }

func TestReboot(t *testing.T) {
	root, hooks := t.TempDir(), t.TempDir()
	f := &fakeReboot{}
	h := &Hooks{Root: root, sys: f}
	if err := h.Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755)
	if err := h.Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "hook-ran")
	writeFile(t, filepath.Join(hooks, HookReboot), "#!/bin/sh\ntouch "+marker+"\n", 0o755)
	h.Dir = hooks
	if err := h.Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("reboot hook did not run")
	}
	if diff := cmp.Diff([]string{"sync", "reboot(2)", "sync", "systemctl", "sync"}, f.calls); diff != "" {
		t.Fatalf("calls (-want +got):\n%s", diff)
	}
}
