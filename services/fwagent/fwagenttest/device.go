// Package fwagenttest simulates an A/B device for tests of the firmware
// domain: file-backed slots, a grubenv, a kernel command line and a boot id
// in files, and the firmware agent running in-process. A reboot stops the
// agent, runs the reference GRUB logic (bootenvtest) and starts the agent
// again on the chosen slot, as a power cycle.
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

// Device is a simulated device running the firmware agent.
type Device struct {
	t   testing.TB
	Dir string
	// Bundle is a signed bundle of version 2.0 for this device.
	Bundle []byte

	env     *bootenv.GrubEnv
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
	d := &Device{t: t, Dir: t.TempDir(), broker: broker, healthy: healthy}
	pki := bundletest.NewPKI(t, "ed25519")
	pki.WriteKeyring(t, d.Dir)
	d.Bundle = bundletest.Build(t, pki.Signer(), map[string][]byte{"rootfs": bundletest.Image(200<<10, 7)}, bundletest.Options{Version: "2.0"})
	d.write("slotA.img", bytes.Repeat([]byte{'A'}, 256<<10))
	d.write("slotB.img", make([]byte, 256<<10))
	cfg := slot.Config{Compatible: "test-board", Bootloader: "grub", GrubEnv: "grubenv", StateDir: "state", Cmdline: "cmdline", BootAttempts: 1,
		Slots: []slot.Slot{{Name: "A", Class: "rootfs", Device: "slotA.img"}, {Name: "B", Class: "rootfs", Device: "slotB.img"}}}
	d.env = bootenv.NewGrubEnv(filepath.Join(d.Dir, "grubenv"))
	if err := d.env.Write(map[string]string{"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "0", "B_TRY": "0"}); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(cfg)
	d.write("slots.json", data)
	t.Cleanup(d.stop)
	d.powerOn()
	return d
}

func (d *Device) write(name string, data []byte) {
	if err := os.WriteFile(filepath.Join(d.Dir, name), data, 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// Booted lists the slots booted so far, in order.
func (d *Device) Booted() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.booted...)
}

func (d *Device) powerOn() {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return
	}
	s, err := bootenvtest.GrubBoot(d.env)
	if err != nil {
		d.t.Error(err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.booted = append(d.booted, s)
	d.write("cmdline", []byte("console=ttyS0 kanto.slot="+s+"\n"))
	d.write("bootid", []byte(fmt.Sprintf("boot-%d", len(d.booted))))
	cfg := fwagent.Defaults()
	cfg.Broker = d.broker
	cfg.Slots = filepath.Join(d.Dir, "slots.json")
	cfg.Keyring = filepath.Join(d.Dir, "keyring.pem")
	cfg.StateDir = filepath.Join(d.Dir, "state-fw")
	cfg.BaseVersion = "1.0"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	d.cancel, d.done = cancel, done
	deps := fwagent.Deps{
		Log:      logging.Discard(),
		Rebooter: rebooter{d},
		BootID:   func() (string, error) { b, err := os.ReadFile(filepath.Join(d.Dir, "bootid")); return string(b), err },
		Checks: []ota.HealthCheck{ota.CheckFunc{CheckName: "test", Fn: func(context.Context) error {
			if d.healthy {
				return nil
			}
			return errors.New("unhealthy on purpose")
		}}},
	}
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
