package imagetool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kantofw/kanto/images/bmap"
	"github.com/kantofw/kanto/images/flash"
	"github.com/kantofw/kanto/services/internal/cli"
)

func env() (*cli.Env, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &cli.Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}, &out, &errb
}

func TestFlashFileTarget(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(1 << 20)
	f.WriteAt(bytes.Repeat([]byte{7}, 8192), 4096)
	m, err := bmap.Create(f, 4096)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "disk.bmap"), m.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	e, out, _ := env()
	target := filepath.Join(dir, "target.img")
	if err := FlashMain(context.Background(), e, []string{img, target}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "verified") {
		t.Errorf("output %q", out.String())
	}
	got, _ := os.ReadFile(target)
	if len(got) != 1<<20 || got[4096] != 7 {
		t.Errorf("target: %d bytes, byte 4096 = %d", len(got), got[4096])
	}
}

func TestFlashRefusesSystemDisk(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	os.WriteFile(img, make([]byte, 4096), 0o644)
	m := &bmap.Map{ImageSize: 4096, BlockSize: 4096}
	os.WriteFile(filepath.Join(dir, "disk.bmap"), m.Marshal(), 0o644)
	for _, dev := range []string{"/dev/vda", "/dev/sda", "/dev/nvme0n1"} {
		if _, err := os.Stat(dev); err != nil {
			continue
		}
		e, _, _ := env()
		err := FlashMain(context.Background(), e, []string{img, dev})
		if errors.Is(err, flash.ErrTargetBusy) {
			return
		}
		t.Logf("%s: %v", dev, err)
	}
	t.Skip("no system disk device found to refuse")
}

func TestProvisionCLI(t *testing.T) {
	dir := t.TempDir()
	e, out, _ := env()
	err := ProvisionMain(context.Background(), e, []string{"-out", dir, "-serial", "SN9", "-address", "tcp://10.0.2.2:1883"})
	if err != nil {
		t.Fatal(err)
	}
	var id struct{ DeviceID string }
	if err := json.Unmarshal([]byte(strings.SplitN(out.String(), "\n", 2)[0]), &id); err != nil || id.DeviceID != "org.eclipse.kanto:SN9" {
		t.Errorf("identity line %q: %v", out.String(), err)
	}
	for _, f := range []string{"device.key", "device.crt", "device.csr", "identity.json", "provisioning.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestUsage(t *testing.T) {
	e, _, _ := env()
	for _, args := range [][]string{{}, {"nope"}, {"provision"}, {"build", "extra"}} {
		if err := ImageMain(context.Background(), e, args); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("kanto image %v = %v, want usage error", args, err)
		}
	}
	if err := FlashMain(context.Background(), e, []string{"only-one"}); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("kanto flash only-one = %v, want usage error", err)
	}
}
