package vmtest

import (
	"context"
	"os"
	"regexp"
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
func TestBootServicesUp(t *testing.T) {
	Require(t)
	img := images.Build(t, "stack", builder.Config{Version: "1.0.0", NoBundle: true})
	vm := Boot(t, img.Disk, qemu.Options{})
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
}
