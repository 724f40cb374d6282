// Package vmtest holds the VM tests of the firmware image: each builds
// images with images/builder and boots them in QEMU (images/qemu). They are
// slow (about 10 s of TCG per boot), so they run only with -vm or
// KANTO_VM_TESTS=1 (set by .ci/run), at most two QEMUs at a time.
package vmtest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kantofw/kanto/images/builder"
	"github.com/kantofw/kanto/images/qemu"
	"github.com/kantofw/kanto/internal/testenv"
)

var vmFlag = flag.Bool("vm", false, "run the VM tests (or set KANTO_VM_TESTS=1)")

// BootTimeout bounds one boot, from power on (or reboot) to the awaited
// marker: 60 s, about 4 times a boot on a quiet 2-core host. It is a guard,
// not a measurement: on a host whose load average exceeds its cores (other
// jobs plus our two QEMUs) it is scaled by load/cores, at most 3 times, and
// KANTO_VM_BOOT_TIMEOUT (a Go duration) overrides it.
var BootTimeout = bootTimeout()

func bootTimeout() time.Duration {
	if v, err := time.ParseDuration(os.Getenv("KANTO_VM_BOOT_TIMEOUT")); err == nil && v > 0 {
		return v
	}
	d := 60 * time.Second
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return d
	}
	var load float64
	if _, err := fmt.Sscan(string(b), &load); err != nil {
		return d
	}
	if f := load / float64(runtime.NumCPU()); f > 1 {
		d = time.Duration(float64(d) * min(f, 3))
	}
	return d
}

// Enabled reports whether VM tests should run.
func Enabled() bool { return *vmFlag || os.Getenv("KANTO_VM_TESTS") == "1" }

// Require skips (or, under CI with VM tests on, fails) when VM tests cannot
// run here.
func Require(t *testing.T) {
	t.Helper()
	if !Enabled() {
		t.Skip("VM test: run with -vm or KANTO_VM_TESTS=1")
	}
	testenv.LookPath(t, qemu.DefaultBinary)
	if _, err := os.Stat(qemu.DefaultOVMF); err != nil {
		testenv.Missing(t, "OVMF (Debian package ovmf)")
	}
	testenv.LookPath(t, "mke2fs")
	testenv.LookPath(t, "mkfs.vfat")
	testenv.LookPath(t, "grub-mkimage")
}

// MaxQEMUs is how many QEMUs the VM tests run at once on this host (2
// shared cores), across all test processes: go test runs packages in
// parallel, so the limit is kept with lock files, not only in memory.
const MaxQEMUs = 2

// slot is one of the MaxQEMUs host-wide QEMU slots, held by an flock.
type slot struct{ f *os.File }

func acquireSlot() slot {
	for {
		for i := range MaxQEMUs {
			p := filepath.Join(os.TempDir(), fmt.Sprintf("kanto-vmtest-qemu-%d.lock", i))
			f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o666)
			if err != nil {
				continue
			}
			if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
				return slot{f}
			}
			f.Close()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s slot) release() { s.f.Close() } // closing drops the flock

// HoldSlot waits for one of the host-wide QEMU slots, for tests that start
// QEMU themselves (e.g. through the demo); call release when the VM is
// gone.
func HoldSlot() (release func()) { return acquireSlot().release }

// Machine is a booted VM holding one of the two QEMU slots.
type Machine struct {
	*qemu.VM
	Disk string
	once sync.Once
	slot slot
}

// Stop cuts the power and frees the QEMU slot; it is idempotent and also
// runs when the test ends.
func (m *Machine) Stop() {
	m.once.Do(func() {
		m.Kill()
		m.slot.release()
	})
}

// Boot copies image and boots the copy.
func Boot(t *testing.T, image string, o qemu.Options) *Machine {
	t.Helper()
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := qemu.CopyDisk(image, disk); err != nil {
		t.Fatal(err)
	}
	return BootInPlace(t, disk, o)
}

// BootInPlace boots disk itself, so its state carries over to a later boot.
// The console is dumped into the test log if the test fails.
func BootInPlace(t *testing.T, disk string, o qemu.Options) *Machine {
	t.Helper()
	sl := acquireSlot()
	o.Disk = disk
	vm, err := qemu.Start(context.Background(), o)
	if err != nil {
		sl.release()
		t.Fatal(err)
	}
	m := &Machine{VM: vm, Disk: disk, slot: sl}
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("console of %s:\n%s", disk, vm.Log())
		}
	})
	return m
}

// Images builds test images once per test binary, sharing the developer's
// build cache (<repo>/out/cache) so that only what changed is rebuilt.
type Images struct {
	mu    sync.Mutex
	built map[string]*builder.Result
	dir   string
}

// Build returns the image built with cfg under name, building it on first
// use. cfg's OutDir is set per name.
func (im *Images) Build(t *testing.T, name string, cfg builder.Config) *builder.Result {
	t.Helper()
	im.mu.Lock()
	defer im.mu.Unlock()
	if r, ok := im.built[name]; ok {
		return r
	}
	im.init(t)
	cfg.OutDir = filepath.Join(im.dir, name)
	if cfg.KantoBinary == "" {
		cfg.KantoBinary = os.Getenv("KANTO_IMAGE_KANTO_BIN")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := builder.Build(ctx, cfg)
	if err != nil {
		t.Fatalf("building image %s: %v", name, err)
	}
	im.built[name] = r
	return r
}

// Dir returns the directory the images are built in (created on first use).
func (im *Images) Dir(t *testing.T) string {
	t.Helper()
	im.mu.Lock()
	defer im.mu.Unlock()
	im.init(t)
	return im.dir
}

func (im *Images) init(t *testing.T) {
	t.Helper()
	if im.built != nil {
		return
	}
	im.built = map[string]*builder.Result{}
	d, err := os.MkdirTemp("", "kanto-vmtest-")
	if err != nil {
		t.Fatal(err)
	}
	im.dir = d
}

// Cleanup removes the built images.
func (im *Images) Cleanup() {
	if im.dir != "" {
		os.RemoveAll(im.dir)
	}
}
