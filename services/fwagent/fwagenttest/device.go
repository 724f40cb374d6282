// Package fwagenttest simulates an A/B device for tests of the firmware
// domain: file-backed slots, a grubenv, a kernel command line and a boot id
// in files. A reboot stops the agent, runs the reference GRUB logic
// (bootenvtest) and starts the agent again on the chosen slot, as a power
// cycle.
//
// Device runs the agent in-process. Tests that need the agent in a process
// of its own (a reboot that really ends it) build on Disk, Boot, Config and
// Deps, so the device layout exists once.
package fwagenttest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/firmware/bootenv/bootenvtest"
	"github.com/kantofw/kanto/firmware/bundle/bundletest"
	"github.com/kantofw/kanto/firmware/slot"
	"github.com/kantofw/kanto/ota"
	"github.com/kantofw/kanto/services/fwagent"
	"github.com/kantofw/kanto/services/internal/logging"
)

// Disk is the persistent state of a simulated device: what survives a
// power cycle.
type Disk struct {
	Dir string
	// Bundle is a signed bundle of version 2.0 for this device.
	Bundle []byte
	Env    *bootenv.GrubEnv

	boots int
}

// NewDisk lays out a device booted on slot A (version 1.0): a keyring,
// two slot images, slots.json and a grubenv.
func NewDisk(t testing.TB) *Disk {
	t.Helper()
	d := &Disk{Dir: t.TempDir()}
	pki := bundletest.NewPKI(t, "ed25519")
	pki.WriteKeyring(t, d.Dir)
	d.Bundle = bundletest.Build(t, pki.Signer(), map[string][]byte{"rootfs": bundletest.Image(200<<10, 7)}, bundletest.Options{Version: "2.0"})
	write(t, d.Dir, "slotA.img", bytes.Repeat([]byte{'A'}, 256<<10))
	write(t, d.Dir, "slotB.img", make([]byte, 256<<10))
	cfg := slot.Config{Compatible: "test-board", Bootloader: "grub", GrubEnv: "grubenv", StateDir: "state", Cmdline: "cmdline", BootAttempts: 1,
		Slots: []slot.Slot{{Name: "A", Class: "rootfs", Device: "slotA.img"}, {Name: "B", Class: "rootfs", Device: "slotB.img"}}}
	d.Env = bootenv.NewGrubEnv(filepath.Join(d.Dir, "grubenv"))
	if err := d.Env.Write(map[string]string{"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "0", "B_TRY": "0"}); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	write(t, d.Dir, "slots.json", data)
	return d
}

// Boot runs the bootloader logic and writes what the booted kernel would
// show: the command line naming the slot and a new boot id. It returns the
// slot booted. Callers serialise boots.
func (d *Disk) Boot() (string, error) {
	s, err := bootenvtest.GrubBoot(d.Env)
	if err != nil {
		return "", err
	}
	d.boots++
	if err := os.WriteFile(filepath.Join(d.Dir, "cmdline"), []byte("console=ttyS0 kanto.slot="+s+"\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(d.Dir, "bootid"), []byte(fmt.Sprintf("boot-%d", d.boots)), 0o644); err != nil {
		return "", err
	}
	return s, nil
}

// Config is the agent's configuration on a device laid out in dir.
func Config(dir, broker string) fwagent.Config {
	cfg := fwagent.Defaults()
	cfg.Broker = broker
	cfg.Slots = filepath.Join(dir, "slots.json")
	cfg.Keyring = filepath.Join(dir, "keyring.pem")
	cfg.StateDir = filepath.Join(dir, "state-fw")
	cfg.BaseVersion = "1.0"
	return cfg
}

// Deps are the agent's hooks on a device laid out in dir: the boot id
// from its file and one health check that passes only if healthy.
func Deps(dir string, healthy bool, r ota.Rebooter) fwagent.Deps {
	return fwagent.Deps{
		Log:      logging.Discard(),
		Rebooter: r,
		BootID:   func() (string, error) { b, err := os.ReadFile(filepath.Join(dir, "bootid")); return string(b), err },
		Checks: []ota.HealthCheck{ota.CheckFunc{CheckName: "test", Fn: func(context.Context) error {
			if healthy {
				return nil
			}
			return errors.New("unhealthy on purpose")
		}}},
	}
}

func write(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Device is a simulated device running the firmware agent in-process.
type Device struct {
	*Disk
	t       testing.TB
	broker  string
	healthy bool

	mu     sync.Mutex
	booted []string
	cancel context.CancelFunc
	done   chan struct{}
	closed bool
	cycles sync.WaitGroup // power cycles in flight
}

// New prepares a device booted on slot A (version 1.0) and starts its
// agent against broker. It stops when the test ends.
func New(t testing.TB, broker string, healthy bool) *Device {
	t.Helper()
	d := &Device{Disk: NewDisk(t), t: t, broker: broker, healthy: healthy}
	t.Cleanup(d.stop)
	d.powerOn()
	return d
}

// Booted lists the slots booted so far, in order.
func (d *Device) Booted() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.booted...)
}

func (d *Device) powerOn() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	s, err := d.Boot()
	if err != nil {
		d.t.Error(err)
		return
	}
	d.booted = append(d.booted, s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	d.cancel, d.done = cancel, done
	cfg, deps := Config(d.Dir, d.broker), Deps(d.Dir, d.healthy, rebooter{d})
	// Owned by the device: one boot of the agent; ends with its context.
	go func() {
		defer close(done)
		if err := fwagent.Run(ctx, cfg, deps); err != nil {
			d.t.Errorf("firmware agent: %v", err)
		}
	}()
}

// rebooter power-cycles the device without blocking the caller.
type rebooter struct{ d *Device }

func (r rebooter) Reboot(context.Context) error {
	d := r.d
	d.mu.Lock()
	cancel, done := d.cancel, d.done
	d.cycles.Add(1)
	d.mu.Unlock()
	// Owned by the device: waits for the agent to stop, then boots again.
	go func() {
		defer d.cycles.Done()
		cancel()
		<-done
		d.powerOn()
	}()
	return nil
}

func (d *Device) stop() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cycles.Wait()
	d.mu.Lock()
	cancel, done := d.cancel, d.done
	d.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}
