package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kantofw/kanto/init/event"
)

// With FAKE_QEMU set, the test binary plays QEMU: it prints a console
// (with OVMF-style escape sequences and bare CRs) and waits to be killed.
func TestMain(m *testing.M) {
	if os.Getenv("FAKE_QEMU") == "1" {
		fmt.Print("\x1b[2J\x1b[01;01HBdsDxe: starting Boot0002\r\n")
		fmt.Print("KANTO-GRUB slot=A ORDER=A B\r\n")
		fmt.Println(event.Line(event.Init, "slot", "A", "version", "1.0.0"))
		fmt.Println(event.Line(event.ServicesUp, "slot", "A"))
		fmt.Print("KANTO-GRUB slot=B ORDER=B A\r\n")
		fmt.Println(event.Line(event.Init, "slot", "B", "version", "2.0.0"))
		if os.Getenv("FAKE_QEMU_EXIT") == "1" {
			os.Exit(0)
		}
		time.Sleep(time.Minute)
		return
	}
	os.Exit(m.Run())
}

func fake(t *testing.T, exit bool) Options {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ovmf := filepath.Join(dir, "OVMF.fd")
	disk := filepath.Join(dir, "disk.img")
	for _, p := range []string{ovmf, disk} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("FAKE_QEMU", "1")
	if exit {
		t.Setenv("FAKE_QEMU_EXIT", "1")
	}
	return Options{Binary: exe, OVMF: ovmf, Disk: disk}
}

func TestWaitForFollowsTheConsole(t *testing.T) {
	vm, err := Start(context.Background(), fake(t, false))
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	ctx := context.Background()
	if l, err := vm.WaitFor(ctx, regexp.MustCompile(`^BdsDxe: starting`), 10*time.Second); err != nil {
		t.Fatalf("escape sequences not stripped: %v\n%s", err, vm.Log())
	} else if strings.ContainsRune(l.Text, '\x1b') {
		t.Errorf("line %q keeps an escape", l.Text)
	}
	// Markers are consumed in order: the second init is B's.
	if _, _, err := vm.WaitEvent(ctx, 10*time.Second, event.Init, "slot", "A"); err != nil {
		t.Fatal(err)
	}
	p, _, err := vm.WaitEvent(ctx, 10*time.Second, event.Init)
	if err != nil || p.KV["slot"] != "B" || p.KV["version"] != "2.0.0" {
		t.Fatalf("second init = %+v, %v", p, err)
	}
	if _, err := vm.WaitFor(ctx, regexp.MustCompile(`never`), 200*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Errorf("WaitFor(never) = %v, want ErrTimeout", err)
	}
	vm.Kill() // power cut: returns once the process is gone
	select {
	case <-vm.Done():
	default:
		t.Error("Kill returned before QEMU exited")
	}
}

func TestWaitForReportsExit(t *testing.T) {
	vm, err := Start(context.Background(), fake(t, true))
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	if _, err := vm.WaitFor(context.Background(), regexp.MustCompile(`never`), 10*time.Second); !errors.Is(err, ErrExited) {
		t.Errorf("WaitFor after exit = %v, want ErrExited", err)
	}
	if got := len(vm.Lines()); got != 6 {
		t.Errorf("%d lines, want 6:\n%s", got, vm.Log())
	}
}

func TestArgs(t *testing.T) {
	a := strings.Join(Args(Options{Disk: "d.img", HostFwd: []string{"tcp::1-:2"}}), " ")
	for _, want := range []string{"-accel tcg", "-bios " + DefaultOVMF, "file=d.img,format=raw,if=virtio", "hostfwd=tcp::1-:2", "i6300esb", "virtio-rng-pci"} {
		if !strings.Contains(a, want) {
			t.Errorf("Args() = %q, missing %q", a, want)
		}
	}
	if strings.Contains(a, "kvm") {
		t.Errorf("Args() = %q must never pick KVM", a)
	}
	d := strings.Join(Args(Options{Kernel: "vmlinuz", Initrd: "i.cpio", Append: "console=ttyS0", NoNet: true}), " ")
	if strings.Contains(d, "-bios") || !strings.Contains(d, "-kernel vmlinuz") || !strings.Contains(d, "-no-reboot") || !strings.Contains(d, "-nic none") {
		t.Errorf("direct boot Args() = %q", d)
	}
}

func TestMissing(t *testing.T) {
	if _, err := Start(context.Background(), Options{Binary: "no-such-qemu", Disk: "x"}); !errors.Is(err, ErrMissing) {
		t.Errorf("Start() = %v, want ErrMissing", err)
	}
}
