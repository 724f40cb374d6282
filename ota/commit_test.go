package ota_test

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/firmware/slot"
	"github.com/kantofw/kanto/ota"
)

// The tests in this file run the agent in process on a simulated device
// (newSimDevice): its reboots are recorded, not performed, and the test
// power cycles the device itself.

// recordReboots counts the reboots the agent asks for.
type recordReboots struct {
	mu sync.Mutex
	n  int
}

func (r *recordReboots) Reboot(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	return nil
}

func (r *recordReboots) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// inProcess is an agent of a simulated device running in the test process.
type inProcess struct {
	*ota.Agent
	d      *simDevice
	slots  *slot.Config
	scheme bootenv.Scheme
	reboot *recordReboots
}

// newAgent builds an agent of d with checks; the boot id is d's (changed
// by powerOn).
func newAgent(t *testing.T, d *simDevice, checks ...ota.HealthCheck) *inProcess {
	t.Helper()
	slots, err := slot.Load(filepath.Join(d.dir, "slots.json"))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := bundle.LoadKeyring(filepath.Join(d.dir, "keyring.pem"))
	if err != nil {
		t.Fatal(err)
	}
	scheme, _, err := slots.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	rr := &recordReboots{}
	a, err := ota.New(ota.Config{DBPath: filepath.Join(d.dir, "ota.db"), Slots: slots, Keyring: kr},
		ota.Deps{
			Log:      slog.New(slog.DiscardHandler),
			Rebooter: rr,
			Scheme:   scheme,
			Checks:   checks,
			BootID: func() (string, error) {
				b, err := os.ReadFile(filepath.Join(d.dir, "bootid"))
				return string(b), err
			},
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return &inProcess{Agent: a, d: d, slots: slots, scheme: scheme, reboot: rr}
}

// blockingCheck is a health check that signals when it starts and then
// waits for its context to end, so the agent stays in verifying until the
// test cancels it.
func blockingCheck(started chan<- struct{}) ota.HealthCheck {
	var once sync.Once
	return ota.CheckFunc{CheckName: "blocks", Fn: func(ctx context.Context) error {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return ctx.Err()
	}}
}

// installAndReboot installs the device's bundle into B, asks for the
// reboot and power cycles the device into B: the update is rebooting and
// the booted slot is the target.
func (a *inProcess) installAndReboot(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	r, err := a.Install(ctx, filepath.Join(a.d.dir, "bundle.kfw"))
	if err != nil || r.State != ota.StateInstalled || r.Target != "B" {
		t.Fatalf("install: %s to %q, %v", r.State, r.Target, err)
	}
	if err := a.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if got := a.reboot.count(); got != 1 {
		t.Fatalf("reboots after Reboot: %d, want 1", got)
	}
	a.d.powerOn()
	if a.d.booted != "B" {
		t.Fatalf("the bootloader picked %s after the install, want B", a.d.booted)
	}
	a.wantState(t, ota.StateRebooting)
}

// verifyUntilCancelled runs Resume on the booted target with a health
// check that blocks; while it blocks, another agent on the same database
// (the CLI next to the daemon) gets ErrBusy from Commit and Rollback. The
// check is then cancelled, which is not a verdict: the update stays
// verifying.
func (a *inProcess) verifyUntilCancelled(t *testing.T, started chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		r   ota.Record
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := a.Resume(ctx)
		done <- result{r, err}
	}()
	<-started
	other := newAgent(t, a.d)
	if _, err := other.Commit(context.Background()); !errors.Is(err, ota.ErrBusy) {
		t.Errorf("Commit during the health checks: %v, want ErrBusy", err)
	}
	if _, err := other.Rollback(context.Background()); !errors.Is(err, ota.ErrBusy) {
		t.Errorf("Rollback during the health checks: %v, want ErrBusy", err)
	}
	cancel()
	res := <-done
	if !errors.Is(res.err, context.Canceled) || res.r.State != ota.StateVerifying {
		t.Fatalf("Resume cancelled during the checks: %s, %v; want verifying, context.Canceled", res.r.State, res.err)
	}
	a.wantState(t, ota.StateVerifying)
}

func (a *inProcess) wantState(t *testing.T, want ota.State) ota.Status {
	t.Helper()
	st, err := a.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Record.State != want {
		t.Fatalf("update state %s, want %s", st.Record.State, want)
	}
	return st
}

func (a *inProcess) slotStatus(t *testing.T, name string) slot.Status {
	t.Helper()
	sf, err := a.slots.LoadStatus()
	if err != nil {
		t.Fatal(err)
	}
	return sf.Slots[name]
}

func (a *inProcess) bootState(t *testing.T) bootenv.State {
	t.Helper()
	bs, err := a.scheme.State()
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// afterBoot lists the ways the agent finds itself on the booted target:
// right after the reboot (rebooting, Resume not run yet) and during the
// health checks (verifying).
var afterBoot = []struct {
	name  string
	state ota.State
}{
	{"rebooting", ota.StateRebooting},
	{"verifying", ota.StateVerifying},
}

// onBootedTarget runs fn for each bootloader and each state after the boot
// into B (see afterBoot), on a device booted into B on trial whose agent
// is in that state.
func onBootedTarget(t *testing.T, fn func(t *testing.T, bl string, d *simDevice, a *inProcess)) {
	for _, bl := range []string{"grub", "uboot"} {
		for _, ab := range afterBoot {
			t.Run(bl+"/"+ab.name, func(t *testing.T) {
				d := newSimDevice(t, bl, 0)
				started := make(chan struct{})
				a := newAgent(t, d, blockingCheck(started))
				a.installAndReboot(t)
				if ab.state == ota.StateVerifying {
					a.verifyUntilCancelled(t, started)
				}
				fn(t, bl, d, a)
			})
		}
	}
}

// TestCommitOnBootedTarget: Commit on the booted new slot commits it in
// the boot environment and the slot status record, without a reboot, and
// the bootloader keeps booting it.
func TestCommitOnBootedTarget(t *testing.T) {
	onBootedTarget(t, func(t *testing.T, bl string, d *simDevice, a *inProcess) {
		if bs := a.bootState(t); !bs.Slots["B"].Trial {
			t.Fatalf("B not on trial before the commit: %+v", bs.Slots)
		}
		r, err := a.Commit(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if r.State != ota.StateCommitted || r.Error != "" {
			t.Fatalf("Commit returned %s (error %q), want committed", r.State, r.Error)
		}
		a.wantState(t, ota.StateCommitted)
		if s := a.slotStatus(t, "B"); s.Status != slot.StatusGood || s.CommittedAt.IsZero() || s.Version != "2.0" {
			t.Fatalf("slot status of B: %+v, want good with a commit time", s)
		}
		bs := a.bootState(t)
		if b := bs.Slots["B"]; !b.Bootable || b.Trial || bs.Primary() != "B" {
			t.Fatalf("boot env after the commit: %+v primary %s, want B bootable, not on trial, primary", bs.Slots, bs.Primary())
		}
		if bl == "grub" && (bs.Env["B_OK"] != "1" || bs.Env["B_TRY"] != "0") {
			t.Fatalf("grubenv after the commit: %v", bs.Env)
		}
		if bl == "uboot" && (bs.Env["BOOT_TRIAL"] != "0" || bs.Env["BOOT_B_LEFT"] != "3") {
			t.Fatalf("U-Boot env after the commit: %v", bs.Env)
		}
		if got := a.reboot.count(); got != 1 {
			t.Fatalf("reboots: %d, want only the one into B", got)
		}
		// Committed for good: the next boots pick B and Resume keeps it.
		for range 2 {
			d.powerOn()
			if d.booted != "B" {
				t.Fatalf("the bootloader picks %s after the commit", d.booted)
			}
		}
		if r, err := a.Resume(context.Background()); err != nil || r.State != ota.StateCommitted {
			t.Fatalf("Resume after the commit: %s, %v", r.State, err)
		}
	})
}

// TestRollbackOnBootedTarget: Rollback on the booted new slot marks it bad
// in the boot environment and the slot status record, asks for a reboot,
// and the bootloader goes back to the previous slot.
func TestRollbackOnBootedTarget(t *testing.T) {
	onBootedTarget(t, func(t *testing.T, bl string, d *simDevice, a *inProcess) {
		r, err := a.Rollback(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if r.State != ota.StateRolledBack {
			t.Fatalf("Rollback returned %s, want rolled-back", r.State)
		}
		a.wantState(t, ota.StateRolledBack)
		if got := a.reboot.count(); got != 2 {
			t.Fatalf("reboots: %d, want 2 (into B, then back)", got)
		}
		if s := a.slotStatus(t, "B"); s.Status != slot.StatusBad {
			t.Fatalf("slot status of B: %+v, want bad", s)
		}
		bs := a.bootState(t)
		if b := bs.Slots["B"]; b.Bootable || b.Trial || bs.Primary() != "A" {
			t.Fatalf("boot env after the rollback: %+v primary %s, want B not bootable, A primary", bs.Slots, bs.Primary())
		}
		if bl == "grub" && (bs.Env["B_OK"] != "0" || bs.Env["ORDER"] != "A B") {
			t.Fatalf("grubenv after the rollback: %v", bs.Env)
		}
		if bl == "uboot" && (bs.Env["BOOT_B_LEFT"] != "0" || bs.Env["BOOT_ORDER"] != "A B") {
			t.Fatalf("U-Boot env after the rollback: %v", bs.Env)
		}
		d.powerOn()
		if d.booted != "A" {
			t.Fatalf("the bootloader picks %s after the rollback, want A", d.booted)
		}
		if r, err := a.Resume(context.Background()); err != nil || r.State != ota.StateRolledBack {
			t.Fatalf("Resume after the rollback: %s, %v", r.State, err)
		}
		if got := a.reboot.count(); got != 2 {
			t.Fatalf("reboots after Resume on A: %d, want 2", got)
		}
	})
}

// TestCommitRollbackRefused: Commit and Rollback outside the states they
// apply to return ErrBusy and change neither the record nor the boot
// environment.
func TestCommitRollbackRefused(t *testing.T) {
	type op struct {
		name string
		fn   func(*inProcess) (ota.Record, error)
	}
	commit := op{"Commit", func(a *inProcess) (ota.Record, error) { return a.Commit(context.Background()) }}
	rollback := op{"Rollback", func(a *inProcess) (ota.Record, error) { return a.Rollback(context.Background()) }}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, a *inProcess)
		state ota.State
		ops   []op
	}{
		{"idle", func(*testing.T, *inProcess) {}, ota.StateIdle, []op{commit, rollback}},
		{"installed, on the previous slot", func(t *testing.T, a *inProcess) {
			if _, err := a.Install(context.Background(), filepath.Join(a.d.dir, "bundle.kfw")); err != nil {
				t.Fatal(err)
			}
		}, ota.StateInstalled, []op{commit}},
		{"rebooting, the reboot has not happened", func(t *testing.T, a *inProcess) {
			if _, err := a.Install(context.Background(), filepath.Join(a.d.dir, "bundle.kfw")); err != nil {
				t.Fatal(err)
			}
			if err := a.Reboot(context.Background()); err != nil {
				t.Fatal(err)
			}
		}, ota.StateRebooting, []op{commit}},
		{"committed", func(t *testing.T, a *inProcess) {
			a.installAndReboot(t)
			if _, err := a.Commit(context.Background()); err != nil {
				t.Fatal(err)
			}
		}, ota.StateCommitted, []op{commit, rollback}},
		{"rolled back", func(t *testing.T, a *inProcess) {
			a.installAndReboot(t)
			if _, err := a.Rollback(context.Background()); err != nil {
				t.Fatal(err)
			}
			a.d.powerOn()
		}, ota.StateRolledBack, []op{commit, rollback}},
		{"failed", func(t *testing.T, a *inProcess) {
			if _, err := a.Install(context.Background(), filepath.Join(a.d.dir, "missing.kfw")); err == nil {
				t.Fatal("install of a missing bundle succeeded")
			}
		}, ota.StateFailed, []op{commit, rollback}},
	} {
		for _, o := range tc.ops {
			t.Run(tc.name+"/"+o.name, func(t *testing.T) {
				d := newSimDevice(t, "grub", 0)
				a := newAgent(t, d)
				tc.setup(t, a)
				a.wantState(t, tc.state)
				envBefore := a.bootState(t).Env
				reboots := a.reboot.count()
				r, err := o.fn(a)
				if !errors.Is(err, ota.ErrBusy) {
					t.Fatalf("%s in %s: %v, want ErrBusy", o.name, tc.state, err)
				}
				if r.State != tc.state {
					t.Fatalf("%s returned the record in %s, want %s", o.name, r.State, tc.state)
				}
				a.wantState(t, tc.state)
				if got := a.bootState(t).Env; !maps.Equal(got, envBefore) {
					t.Fatalf("boot env changed by a refused %s: %v, was %v", o.name, got, envBefore)
				}
				if got := a.reboot.count(); got != reboots {
					t.Fatalf("a refused %s asked for a reboot", o.name)
				}
			})
		}
	}
}

// TestBootCountOncePerBootID: the booted slot's boot count grows once per
// kernel boot id, however often Resume runs within one boot.
func TestBootCountOncePerBootID(t *testing.T) {
	d := newSimDevice(t, "grub", 0)
	var mu sync.Mutex
	bootID := "boot-x"
	slots, err := slot.Load(filepath.Join(d.dir, "slots.json"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ota.New(ota.Config{DBPath: filepath.Join(d.dir, "ota.db"), Slots: slots},
		ota.Deps{Log: slog.New(slog.DiscardHandler), Rebooter: &recordReboots{}, BootID: func() (string, error) {
			mu.Lock()
			defer mu.Unlock()
			return bootID, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	count := func() map[string]int64 {
		t.Helper()
		sf, err := slots.LoadStatus()
		if err != nil {
			t.Fatal(err)
		}
		return map[string]int64{"A": sf.Slots["A"].BootCount, "B": sf.Slots["B"].BootCount}
	}
	for i, step := range []struct {
		bootID string
		want   int64
	}{
		{"boot-x", 1},
		{"boot-x", 1}, // the agent restarted within the same boot
		{"boot-y", 2},
		{"boot-y", 2},
	} {
		mu.Lock()
		bootID = step.bootID
		mu.Unlock()
		if _, err := a.Resume(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := count(); got["A"] != step.want || got["B"] != 0 {
			t.Fatalf("after Resume %d (boot id %s): boot counts %v, want A=%d B=0", i+1, step.bootID, got, step.want)
		}
	}
}
