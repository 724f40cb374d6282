package ota_test

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
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/firmware/bootenv/bootenvtest"
	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/firmware/bundle/bundletest"
	"github.com/kantofw/kanto/firmware/install"
	"github.com/kantofw/kanto/firmware/slot"
	"github.com/kantofw/kanto/ota"
)

// The kill tests re-execute this test binary as the agent of a simulated
// device (file-backed slots, a grubenv or U-Boot env, a kernel command line
// and boot id in files). The child SIGKILLs itself right after persisting a
// chosen state; the parent then either restarts the agent in the same boot
// or "power cycles" the device: it runs the reference bootloader logic
// (bootenvtest), writes the chosen slot to the command line and a new boot
// id, and starts the agent's Resume. At the end it checks the final state,
// the booted slot and the chain of states from the agent's history.

const helperEnv = "KANTO_OTA_HELPER"

// TestHelperAgent is the child; it does nothing in a normal test run.
func TestHelperAgent(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper process for the kill tests")
	}
	os.Exit(helperMain())
}

func helperMain() int {
	dir := os.Getenv("DEV_DIR")
	killAt := ota.State(os.Getenv("KILL_AT"))
	slots, err := slot.Load(filepath.Join(dir, "slots.json"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	kr, err := bundle.LoadKeyring(filepath.Join(dir, "keyring.pem"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	healthy := os.Getenv("HEALTHY") == "1"
	a, err := ota.New(ota.Config{DBPath: filepath.Join(dir, "ota.db"), Slots: slots, Keyring: kr, AutoReboot: true, MaxBoots: 3},
		ota.Deps{
			Log:      slog.New(slog.NewTextHandler(os.Stderr, nil)),
			Rebooter: rebootExit{dir},
			BootID:   func() (string, error) { b, err := os.ReadFile(filepath.Join(dir, "bootid")); return string(b), err },
			Checks: []ota.HealthCheck{ota.CheckFunc{CheckName: "test", Fn: func(context.Context) error {
				if healthy {
					return nil
				}
				return errors.New("unhealthy on purpose")
			}}},
			AfterInstallStep: func(s install.Step) {
				if "install:"+string(s) == string(killAt) {
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
					select {}
				}
			},
			AfterPersist: func(r ota.Record) {
				if r.State == killAt {
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
					select {}
				}
			},
		})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	ctx := context.Background()
	var r ota.Record
	if os.Getenv("MODE") == "install" {
		r, err = a.Install(ctx, filepath.Join(dir, "bundle.kfw"))
	} else {
		r, err = a.Resume(ctx)
	}
	a.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
	}
	fmt.Printf("DONE %s\n", r.State)
	return 0
}

// rebootExit stands for a real reboot: the process ends.
type rebootExit struct{ dir string }

func (r rebootExit) Reboot(context.Context) error {
	os.WriteFile(filepath.Join(r.dir, "reboot-requested"), nil, 0o644)
	fmt.Println("REBOOT")
	os.Exit(0)
	return nil
}

type simDevice struct {
	t      *testing.T
	dir    string
	store  bootenv.Store
	boot   func() (string, error)
	boots  int
	booted string
}

func newSimDevice(t *testing.T, bootloader string, attempts int) *simDevice {
	t.Helper()
	dir := t.TempDir()
	d := &simDevice{t: t, dir: dir}
	pki := bundletest.NewPKI(t, "ed25519")
	pki.WriteKeyring(t, dir)
	img := bundletest.Image(200<<10, 7)
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("bundle.kfw", bundletest.Build(t, pki.Signer(), map[string][]byte{"rootfs": img}, bundletest.Options{Version: "2.0"}))
	write("slotA.img", bytes.Repeat([]byte{'A'}, 256<<10))
	write("slotB.img", make([]byte, 256<<10))
	cfg := slot.Config{Compatible: "test-board", Bootloader: bootloader, StateDir: "state", Cmdline: "cmdline", BootAttempts: attempts,
		Slots: []slot.Slot{{Name: "A", Class: "rootfs", Device: "slotA.img"}, {Name: "B", Class: "rootfs", Device: "slotB.img"}}}
	switch bootloader {
	case "grub":
		cfg.GrubEnv = "grubenv"
		g := bootenv.NewGrubEnv(filepath.Join(dir, "grubenv"))
		if err := g.Write(map[string]string{"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "0", "B_TRY": "0"}); err != nil {
			t.Fatal(err)
		}
		d.store, d.boot = g, func() (string, error) { return bootenvtest.GrubBoot(g) }
	case "uboot":
		cfg.UBootConfig = "fw_env.config"
		write("env0", make([]byte, 8192))
		write("fw_env.config", []byte(fmt.Sprintf("%s 0 0x1000\n%s 0x1000 0x1000\n", filepath.Join(dir, "env0"), filepath.Join(dir, "env0"))))
		u, err := bootenv.OpenUBootEnv(filepath.Join(dir, "fw_env.config"))
		if err != nil {
			t.Fatal(err)
		}
		u.LockPath, u.Create = filepath.Join(dir, "envlock"), true
		if err := u.Write(map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0", "BOOT_TRIAL": "0"}); err != nil {
			t.Fatal(err)
		}
		d.store, d.boot = u, func() (string, error) { return bootenvtest.UBootBoot(u) }
	}
	data, _ := json.Marshal(cfg)
	write("slots.json", data)
	d.powerOn()
	return d
}

// powerOn runs the bootloader and starts the kernel of the chosen slot.
func (d *simDevice) powerOn() {
	d.t.Helper()
	s, err := d.boot()
	if err != nil {
		d.t.Fatal(err)
	}
	d.boots++
	d.booted = s
	if err := os.WriteFile(filepath.Join(d.dir, "cmdline"), []byte("console=ttyS0 kanto.slot="+s+"\n"), 0o644); err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.dir, "bootid"), []byte(fmt.Sprintf("boot-%d", d.boots)), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

type outcome int

const (
	outDone outcome = iota
	outRebooted
	outKilled
)

// run starts the agent; killAt makes it SIGKILL itself after persisting
// that state.
func (d *simDevice) run(mode string, killAt ota.State, healthy bool) (outcome, string) {
	d.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAgent$", "-test.count=1")
	h := "0"
	if healthy {
		h = "1"
	}
	cmd.Env = append(os.Environ(), helperEnv+"=1", "DEV_DIR="+d.dir, "MODE="+mode, "KILL_AT="+string(killAt), "HEALTHY="+h)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
		return outKilled, ""
	case err != nil:
		d.t.Fatalf("agent %s: %v\n%s%s", mode, err, stdout.String(), stderr.String())
	case strings.Contains(stdout.String(), "REBOOT"):
		return outRebooted, ""
	}
	out := stdout.String()
	i := strings.Index(out, "DONE ")
	if i < 0 {
		d.t.Fatalf("agent %s: no result\n%s%s", mode, out, stderr.String())
	}
	return outDone, strings.Fields(out[i+5:])[0]
}

type scenario struct {
	name       string
	bootloader string
	attempts   int
	killAt     ota.State
	killEvery  bool // kill at killAt in every run, not only the first
	powerCut   bool // after a kill, power cycle (else restart the agent in the same boot)
	unhealthy  bool
	wantChain  []ota.State
	wantState  ota.State
	wantBooted string
}

var (
	happyChain = []ota.State{"downloading", "installing", "installed", "rebooting", "verifying", "committed"}
)

func scenarios() []scenario {
	var out []scenario
	for _, bl := range []string{"grub", "uboot"} {
		s := func(name string, killAt ota.State, powerCut bool, chain []ota.State, state ota.State, booted string) scenario {
			mode := "restart"
			if powerCut {
				mode = "powercut"
			}
			return scenario{name: fmt.Sprintf("%s/%s@%s", bl, mode, killAt), bootloader: bl, killAt: killAt, powerCut: powerCut,
				wantChain: chain, wantState: state, wantBooted: booted}
		}
		st := func(names ...string) []ota.State {
			var c []ota.State
			for _, n := range names {
				c = append(c, ota.State(n))
			}
			return c
		}
		out = append(out,
			s("no kill", "", false, happyChain, "committed", "B"),
			// A kill before the target is armed: the next start installs again,
			// keeping the chunks the target already holds.
			s("", "downloading", true, st("downloading", "downloading", "installing", "installed", "rebooting", "verifying", "committed"), "committed", "B"),
			s("", "downloading", false, st("downloading", "downloading", "installing", "installed", "rebooting", "verifying", "committed"), "committed", "B"),
			s("", "installing", true, st("downloading", "installing", "downloading", "installing", "installed", "rebooting", "verifying", "committed"), "committed", "B"),
			s("", "installing", false, st("downloading", "installing", "downloading", "installing", "installed", "rebooting", "verifying", "committed"), "committed", "B"),
			s("", "install:marked-bad", true, st("downloading", "installing", "downloading", "installing", "installed", "rebooting", "verifying", "committed"), "committed", "B"),
			s("", "install:written", true, st("downloading", "installing", "downloading", "installing", "installed", "rebooting", "verifying", "committed"), "committed", "B"),
			s("", "install:written", false, st("downloading", "installing", "downloading", "installing", "installed", "rebooting", "verifying", "committed"), "committed", "B"),
			s("", "install:armed", true, st("downloading", "installing", "verifying", "committed"), "committed", "B"),
			s("", "install:armed", false, st("downloading", "installing", "installed", "rebooting", "verifying", "committed"), "committed", "B"),
			s("", "installed", true, st("downloading", "installing", "installed", "verifying", "committed"), "committed", "B"),
			s("", "installed", false, st("downloading", "installing", "installed", "rebooting", "verifying", "committed"), "committed", "B"),
			s("", "rebooting", true, happyChain, "committed", "B"),
			s("", "rebooting", false, st("downloading", "installing", "installed", "rebooting", "rebooting", "verifying", "committed"), "committed", "B"),
			s("", "verifying", false, st("downloading", "installing", "installed", "rebooting", "verifying", "verifying", "committed"), "committed", "B"),
			s("", "committed", true, happyChain, "committed", "B"),
			s("", "committed", false, happyChain, "committed", "B"),
		)
		// A power cut during verification: GRUB gives a slot one trial boot, so
		// it falls back; U-Boot has BOOT_B_LEFT attempts left and boots B again.
		if bl == "grub" {
			out = append(out, s("", "verifying", true, st("downloading", "installing", "installed", "rebooting", "verifying", "rolled-back"), "rolled-back", "A"))
		} else {
			out = append(out, s("", "verifying", true, st("downloading", "installing", "installed", "rebooting", "verifying", "verifying", "committed"), "committed", "B"))
		}
		unhealthy := s("unhealthy", "", false, st("downloading", "installing", "installed", "rebooting", "verifying", "rolled-back"), "rolled-back", "A")
		unhealthy.name, unhealthy.unhealthy = bl+"/unhealthy", true
		killRB := unhealthy
		killRB.name, killRB.killAt, killRB.powerCut = bl+"/unhealthy/powercut@rolled-back", "rolled-back", true
		out = append(out, unhealthy, killRB)
	}
	// Killed while writing at every attempt: the attempts cap (3) ends it.
	out = append(out, scenario{name: "grub/install-attempts-cap", bootloader: "grub", killAt: "installing", killEvery: true, powerCut: true,
		wantChain: []ota.State{"downloading", "installing", "downloading", "installing", "downloading", "installing", "failed"}, wantState: "failed", wantBooted: "A"})
	// Reboot loop: the new slot dies during every verification (a watchdog
	// reset), U-Boot would allow 9 attempts, the agent's cap (3) wins.
	out = append(out, scenario{name: "uboot/boot-loop-cap", bootloader: "uboot", attempts: 9, killAt: "verifying", killEvery: true, powerCut: true,
		wantChain: []ota.State{"downloading", "installing", "installed", "rebooting", "verifying", "verifying", "verifying", "rolled-back"}, wantState: "rolled-back", wantBooted: "A"})
	return out
}

// TestKillAtEveryState: kill -9 at every state, with a restart in the same
// boot or a power cycle, and check the agent ends where the recovery table
// says.
func TestKillAtEveryState(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary many times")
	}
	short := map[string]bool{"grub/restart@": true, "grub/powercut@installing": true, "uboot/restart@verifying": true, "uboot/boot-loop-cap": true}
	for _, sc := range scenarios() {
		if raceEnabled && !short[sc.name] {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			d := newSimDevice(t, sc.bootloader, sc.attempts)
			out, final := d.run("install", sc.killAt, !sc.unhealthy)
			killed := out == outKilled
			for step := 0; out != outDone; step++ {
				if step > 12 {
					t.Fatal("no steady state after 12 restarts")
				}
				if out == outRebooted || sc.powerCut {
					d.powerOn()
				}
				// Kill once at killAt (or every time with killEvery).
				kill := ota.State("")
				if sc.killEvery || !killed {
					kill = sc.killAt
				}
				out, final = d.run("resume", kill, !sc.unhealthy)
				killed = killed || out == outKilled
			}
			if sc.killAt != "" && !killed {
				t.Fatalf("the agent never reached %s to be killed", sc.killAt)
			}
			// One more start changes nothing (a steady state).
			if _, again := d.run("resume", "", !sc.unhealthy); again != final {
				t.Fatalf("not steady: %s then %s", final, again)
			}
			if ota.State(final) != sc.wantState || d.booted != sc.wantBooted {
				t.Fatalf("final %s on %s, want %s on %s", final, d.booted, sc.wantState, sc.wantBooted)
			}
			if diff := cmp.Diff(sc.wantChain, d.chain()); diff != "" {
				t.Fatalf("state chain (-want +got):\n%s", diff)
			}
			// The bootloader agrees with the outcome: a power cycle boots the same slot.
			d.powerOn()
			if d.booted != sc.wantBooted {
				t.Fatalf("after the update the bootloader picks %s", d.booted)
			}
		})
	}
}

// chain reads the state chain of the update from the agent's history.
func (d *simDevice) chain() []ota.State {
	d.t.Helper()
	slots, err := slot.Load(filepath.Join(d.dir, "slots.json"))
	if err != nil {
		d.t.Fatal(err)
	}
	a, err := ota.New(ota.Config{DBPath: filepath.Join(d.dir, "ota.db"), Slots: slots}, ota.Deps{Log: slog.New(slog.DiscardHandler), Rebooter: rebootExit{d.dir}})
	if err != nil {
		d.t.Fatal(err)
	}
	defer a.Close()
	h, err := a.History()
	if err != nil {
		d.t.Fatal(err)
	}
	var out []ota.State
	for _, tr := range h {
		out = append(out, tr.To)
	}
	return out
}
