package vmtest

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kantofw/kanto/images/builder"
	"github.com/kantofw/kanto/images/qemu"
	"github.com/kantofw/kanto/init/event"
)

var images Images

func TestMain(m *testing.M) {
	code := m.Run()
	images.Cleanup()
	os.Exit(code)
}

// A fresh image (the full device stack: Mosquitto, suite-connector, the OTA
// agent) boots slot A through GRUB, the init starts the services in order
// and finds the slot healthy (committed already, so nothing is written).
// Then the ACPI power button (QEMU's system_powerdown, as libvirt's
// shutdown) makes the init stop the services, unmount /data cleanly and
// power off.
func TestBootServicesUp(t *testing.T) {
	Require(t)
	img := images.Build(t, "stack", builder.Config{Version: "1.0.0", NoBundle: true})
	mon := filepath.Join(t.TempDir(), "mon.sock")
	vm := Boot(t, img.Disk, qemu.Options{Extra: []string{"-no-reboot", "-monitor", "unix:" + mon + ",server,nowait"}})
	ctx := context.Background()
	if _, err := vm.WaitFor(ctx, regexp.MustCompile(`KANTO-GRUB slot=A ORDER=A B`), BootTimeout); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []struct {
		name string
		kv   []string
	}{
		{event.Stage1, nil},
		{event.Init, []string{"slot", "A", "version", "1.0.0"}},
		{event.Mounted, []string{"path", "/data"}},
		{event.NetUp, nil},
		{event.ServiceReady, []string{"name", "mosquitto"}},
		{event.ServiceReady, []string{"name", "suite-connector"}},
		{event.ServicesUp, []string{"slot", "A", "services", "3"}},
		{event.Healthy, []string{"slot", "A", "trial", "false"}},
	} {
		if _, l, err := vm.WaitEvent(ctx, BootTimeout-vm.Since(), ev.name, ev.kv...); err != nil {
			t.Fatal(err)
		} else {
			t.Logf("%6.2fs %s", l.At.Seconds(), l.Text)
		}
	}
	// The watchdog is armed concurrently with the mounts: look for its
	// marker anywhere in the boot. The driver must report the configured
	// 30 s and say it took the value (i6300esb's default is 30 s too, so
	// the timeout alone would not show a refused ioctl).
	armed := false
	for _, l := range vm.Lines() {
		if p, ok := event.Parse(l.Text); ok && p.Name == event.Watchdog {
			t.Logf("%6.2fs %s", l.At.Seconds(), l.Text)
			armed = p.KV["timeout"] == "30" && p.KV["set"] == "true"
		}
	}
	if !armed {
		t.Error("no watchdog marker with timeout=30 set=true on the console")
	}

	// While /data is mounted its journal says so; a clean unmount clears
	// that (a power cut leaves it set for the next mount's recovery).
	if dirty, err := NeedsRecovery(vm.Disk, builder.LabelData); err != nil || !dirty {
		t.Fatalf("data partition while mounted: needs_recovery=%v (%v), want true", dirty, err)
	}
	watched := false
	for _, l := range vm.Lines() {
		if p, ok := event.Parse(l.Text); ok && p.Name == event.PowerKey {
			t.Logf("%6.2fs %s", l.At.Seconds(), l.Text)
			watched = true
		}
	}
	if !watched {
		t.Fatal("no power-key marker: the init found no power button to watch")
	}
	if err := Monitor(mon, "system_powerdown"); err != nil {
		t.Fatal(err)
	}
	if _, l, err := vm.WaitEvent(ctx, BootTimeout, event.Shutdown, "action", "poweroff"); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("%6.2fs %s", l.At.Seconds(), l.Text)
	}
	if err := vm.Wait(BootTimeout); err != nil {
		t.Fatalf("QEMU after the guest's poweroff: %v", err)
	}
	if dirty, err := NeedsRecovery(vm.Disk, builder.LabelData); err != nil || dirty {
		t.Errorf("data partition after shutdown: needs_recovery=%v (%v), want a clean unmount", dirty, err)
	}
	for _, l := range vm.Lines() {
		if strings.Contains(l.Text, "unmount, remounting read-only") {
			t.Errorf("teardown could not unmount: %s", l.Text)
		}
	}
}
