package vmtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kantofw/kanto/images/disk"
	"github.com/kantofw/kanto/images/provision"
	"github.com/kantofw/kanto/images/qemu"
	"github.com/kantofw/kanto/init/event"
)

// Build once, provision per device: two copies of one image provisioned
// with different serials boot with their own identities.
func TestProvisionedIdentity(t *testing.T) {
	Require(t)
	t.Parallel()
	good := variant(t, "good")
	for _, serial := range []string{"SN-0001", "SN-0002"} {
		t.Run(serial, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "disk.img")
			if err := qemu.CopyDisk(good.Disk, p); err != nil {
				t.Fatal(err)
			}
			im, err := disk.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			dir := filepath.Join(root, strings.TrimPrefix(provision.DeviceDir, "/data/"))
			id, err := provision.Write(dir, provision.Options{Serial: serial, Address: "tcp://10.0.2.2:1883"})
			if err != nil {
				t.Fatal(err)
			}
			if err := im.WriteData(root); err != nil {
				t.Fatal(err)
			}
			m := BootInPlace(t, p, qemu.Options{})
			expect(t, m, step{event.Identity, []string{"device", id.DeviceID}},
				step{event.ServicesUp, nil})
			m.Stop()
		})
	}
	_ = os.Getenv
}
