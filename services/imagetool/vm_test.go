package imagetool

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kantofw/kanto/images/builder"
	"github.com/kantofw/kanto/images/disk"
	"github.com/kantofw/kanto/images/provision"
	"github.com/kantofw/kanto/images/qemu"
	"github.com/kantofw/kanto/images/vmtest"
	"github.com/kantofw/kanto/init/event"
	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/internal/cloudpeer"
)

var vmImages vmtest.Images

func TestMain(m *testing.M) {
	code := m.Run()
	vmImages.Cleanup()
	os.Exit(code)
}

// The firmware image boots, its services come up, and its suite-connector
// reaches the cloud peer (Hono's MQTT adapter played by cloudpeer on the
// host's loopback, 10.0.2.2 from the guest) with the identity written by
// kanto image provision: the hub sees the device's command subscription.
func TestVMConnectsToCloudPeer(t *testing.T) {
	vmtest.Require(t)
	hub := mosquittotest.Start(t, mosquittotest.Options{SysLog: true})
	adapter, err := cloudpeer.NewAdapter(hub.Addr(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { adapter.Close() })
	const password = "vm-secret"
	adapter.AddCredential(cloudpeer.Credential{Tenant: "kanto", AuthID: "org.eclipse.kanto_vm-1", Password: password})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nb, err := cloudpeer.NewNorthbound(ctx, hub.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nb.Close)

	img := vmImages.Build(t, "cloud", builder.Config{Version: "1.0.0", NoBundle: true})
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := qemu.CopyDisk(img.Disk, p); err != nil {
		t.Fatal(err)
	}
	im, err := disk.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(adapter.Addr())
	root := t.TempDir()
	if _, err := provision.Write(filepath.Join(root, strings.TrimPrefix(provision.DeviceDir, "/data/")),
		provision.Options{Serial: "vm-1", Address: "tcp://10.0.2.2:" + port, Password: password}); err != nil {
		t.Fatal(err)
	}
	if err := im.WriteData(root); err != nil {
		t.Fatal(err)
	}
	m := vmtest.BootInPlace(t, p, qemu.Options{})
	if _, l, err := m.WaitEvent(ctx, vmtest.BootTimeout, event.Identity, "device", "org.eclipse.kanto:vm-1"); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("%6.2fs %s", l.At.Seconds(), l.Text)
	}
	if _, l, err := m.WaitEvent(ctx, vmtest.BootTimeout, event.ServicesUp); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("%6.2fs %s", l.At.Seconds(), l.Text)
	}
	wctx, wcancel := context.WithTimeout(ctx, vmtest.BootTimeout)
	defer wcancel()
	if _, err := nb.AwaitSubscription(wctx, "command//+/req/#", true); err != nil {
		t.Fatalf("the device never subscribed to its commands on the hub (adapter saw %d CONNECTs): %v", adapter.Attempts(), err)
	}
	t.Logf("%6.2fs connected: the hub sees the device's command subscription", m.Since().Seconds())
}
