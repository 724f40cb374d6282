package vmtest

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/images/builder"
	"github.com/kantofw/kanto/images/disk"
	"github.com/kantofw/kanto/images/qemu"
	"github.com/kantofw/kanto/init/event"
	"github.com/kantofw/kanto/init/initcfg"
)

// The update variants written into slot B. The host plays the installer
// (write the slot, then arm it, as firmware/BOOTENV.md prescribes), so these
// tests exercise GRUB's scheme and the init's health decision on a real
// boot; the OTA agent's own install path has its tests in ota/.
func variant(t *testing.T, name string) *builder.Result {
	t.Helper()
	switch name {
	case "good":
		return images.Build(t, name, builder.Config{Version: "1.0.0", NoBundle: true, Minimal: true})
	case "v2":
		return images.Build(t, name, builder.Config{Version: "2.0.0", NoBundle: true, Minimal: true})
	case "badhealth":
		// A service of the new firmware crashes at every start, so the
		// services never all become ready.
		return images.Build(t, name, builder.Config{Version: "2.0.1-bad", NoBundle: true, Minimal: true,
			Services: []initcfg.Service{{Name: "broken", Exec: []string{"/usr/bin/kanto", "no-such-service"}, After: []string{"mosquitto"}}},
			Health:   initcfg.Health{TimeoutSec: 8}})
	case "panic":
		return images.Build(t, name, builder.Config{Version: "2.0.2-panic", NoBundle: true, Minimal: true, BrokenInitramfs: true})
	}
	t.Fatalf("unknown variant %s", name)
	return nil
}

// stageUpdate copies the good image and installs variant into slot B from
// the host: write B, then arm it.
func stageUpdate(t *testing.T, variantName string) string {
	t.Helper()
	good := variant(t, "good")
	upd := variant(t, variantName)
	p := t.TempDir() + "/disk.img"
	if err := qemu.CopyDisk(good.Disk, p); err != nil {
		t.Fatal(err)
	}
	im, err := disk.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := im.Scheme(func(s bootenv.Scheme) error { return s.MarkBad("B") }); err != nil {
		t.Fatal(err)
	}
	if err := im.WritePartition(builder.LabelSlotB, upd.Rootfs); err != nil {
		t.Fatal(err)
	}
	if err := im.Scheme(func(s bootenv.Scheme) error { return s.Arm("B") }); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(t *testing.T, p string) map[string]string {
	t.Helper()
	im, err := disk.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	e, err := im.Env()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func wantEnv(t *testing.T, p string, want map[string]string) {
	t.Helper()
	got := env(t, p)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("grubenv %s = %q, want %q (env %v)", k, got[k], v, got)
		}
	}
}

type step struct {
	name string
	kv   []string
}

// expect waits for each marker in order; re steps match raw console text.
func expect(t *testing.T, m *Machine, steps ...any) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(BootTimeout)
	for _, s := range steps {
		switch s := s.(type) {
		case step:
			if _, l, err := m.WaitEvent(ctx, time.Until(deadline), s.name, s.kv...); err != nil {
				t.Fatal(err)
			} else {
				t.Logf("%6.2fs %s", l.At.Seconds(), l.Text)
			}
			if s.name == event.Shutdown {
				deadline = time.Now().Add(BootTimeout) // the reboot is a new boot
			}
		case *regexp.Regexp:
			l, err := m.WaitFor(ctx, s, time.Until(deadline))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%6.2fs %s", l.At.Seconds(), l.Text)
			if regexp.MustCompile(`KANTO-GRUB|Kernel panic`).MatchString(l.Text) {
				deadline = time.Now().Add(BootTimeout) // a new boot starts its own 60 s
			}
		}
	}
}

var grubSlot = func(slot string) *regexp.Regexp { return regexp.MustCompile(`KANTO-GRUB slot=` + slot + ` `) }

// A good update in B: GRUB boots it on trial, the init finds it healthy and
// commits; the power is cut right after the commit, and the next boot
// starts B as committed (GRUB writes nothing).
func TestUpdateCommits(t *testing.T) {
	Require(t)
	t.Parallel()
	p := stageUpdate(t, "v2")
	m := BootInPlace(t, p, qemu.Options{})
	expect(t, m, grubSlot("B"),
		step{event.Init, []string{"slot", "B", "version", "2.0.0"}},
		step{event.Committed, []string{"slot", "B"}})
	m.Stop() // power cut right after the commit
	wantEnv(t, p, map[string]string{"ORDER": "B A", "B_OK": "1", "B_TRY": "0", "A_OK": "1"})
	m = BootInPlace(t, p, qemu.Options{})
	expect(t, m, regexp.MustCompile(`KANTO-GRUB slot=B ORDER=B A A_OK=1 A_TRY=0 B_OK=1 B_TRY=0`),
		step{event.Healthy, []string{"slot", "B", "trial", "false"}})
	m.Stop()
}

// The new slot's services never come up: the init reports it unhealthy and
// reboots; GRUB sees the used trial, marks B bad and boots A.
func TestUnhealthyUpdateFallsBack(t *testing.T) {
	Require(t)
	t.Parallel()
	p := stageUpdate(t, "badhealth")
	m := BootInPlace(t, p, qemu.Options{})
	expect(t, m, grubSlot("B"),
		step{event.Init, []string{"slot", "B", "version", "2.0.1-bad"}},
		step{event.Unhealthy, []string{"slot", "B", "action", "reboot"}},
		step{event.Shutdown, []string{"action", "reboot"}},
		grubSlot("A"),
		step{event.Init, []string{"slot", "A", "version", "1.0.0"}},
		step{event.Healthy, []string{"slot", "A", "trial", "false"}})
	m.Stop()
	wantEnv(t, p, map[string]string{"B_OK": "0", "B_TRY": "0", "A_OK": "1", "A_TRY": "0"})
}

// The new slot's kernel panics before any userspace runs (its initramfs is
// garbage): panic=5 reboots, and GRUB alone falls back to A.
func TestKernelPanicFallsBack(t *testing.T) {
	Require(t)
	t.Parallel()
	p := stageUpdate(t, "panic")
	m := BootInPlace(t, p, qemu.Options{})
	expect(t, m, grubSlot("B"),
		regexp.MustCompile(`Kernel panic`),
		grubSlot("A"),
		step{event.Healthy, []string{"slot", "A", "trial", "false"}})
	m.Stop()
	wantEnv(t, p, map[string]string{"B_OK": "0", "A_OK": "1"})
}

// Power cut during the trial boot of B, after GRUB used the attempt and
// before the init could commit: the next boot falls back to A.
func TestPowerCutDuringTrial(t *testing.T) {
	Require(t)
	t.Parallel()
	p := stageUpdate(t, "v2")
	m := BootInPlace(t, p, qemu.Options{})
	expect(t, m, grubSlot("B"), step{event.Init, []string{"slot", "B"}})
	m.Stop()
	wantEnv(t, p, map[string]string{"B_OK": "1", "B_TRY": "2"})
	m = BootInPlace(t, p, qemu.Options{})
	expect(t, m, regexp.MustCompile(`KANTO-GRUB slot=A .*B_OK=0 B_TRY=0`),
		step{event.Healthy, []string{"slot", "A", "trial", "false"}})
	m.Stop()
}
