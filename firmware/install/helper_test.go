package install_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/firmware/install"
	"github.com/kantofw/kanto/firmware/slot"
)

// TestHelperInstall installs $KANTO_BUNDLE with $KANTO_SLOTS and
// $KANTO_KEYRING when KANTO_INSTALL_HELPER=1. bench/fw-install.sh runs the
// test binary this way to measure the installer's peak RSS without the
// start-up cost of every service linked into the kanto binary, and
// TestInstallMemoryBounded runs it with the bundle on a pipe
// (KANTO_BUNDLE=/dev/stdin).
func TestHelperInstall(t *testing.T) {
	if os.Getenv("KANTO_INSTALL_HELPER") != "1" {
		t.Skip("helper for bench/fw-install.sh and TestInstallMemoryBounded")
	}
	slots, err := slot.Load(os.Getenv("KANTO_SLOTS"))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := bundle.LoadKeyring(os.Getenv("KANTO_KEYRING"))
	if err != nil {
		t.Fatal(err)
	}
	scheme, _, err := slots.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	src, err := install.Open(context.Background(), os.Getenv("KANTO_BUNDLE"), install.HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	res, err := (&install.Installer{Slots: slots, Scheme: scheme, Keyring: kr}).Install(context.Background(), src, install.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("installed %s into %s\n", res.Manifest.Version, res.Target)
}
