package flash

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kantofw/kanto/images/bmap"
)

func image(t *testing.T) (string, *bmap.Map) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(4 << 20); err != nil {
		t.Fatal(err)
	}
	for off, c := range map[int64]byte{0: 'a', 1 << 20: 'b', 3<<20 + 4096: 'c'} {
		if _, err := f.WriteAt(bytes.Repeat([]byte{c}, 8192), off); err != nil {
			t.Fatal(err)
		}
	}
	m, err := bmap.Create(f, 4096)
	if err != nil {
		t.Fatal(err)
	}
	return p, m
}

func TestFlashFileTarget(t *testing.T) {
	img, m := image(t)
	target := filepath.Join(t.TempDir(), "target")
	// A dirty target: old bytes in the mapped ranges must be overwritten.
	if err := os.WriteFile(target, bytes.Repeat([]byte{'x'}, 5<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	var last int64
	res, err := Flash(img, m, target, Options{Progress: func(done, _ int64) { last = done }})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Verified || res.Written != 3*8192 || last != res.Written {
		t.Errorf("result = %+v, progress %d", res, last)
	}
	got, _ := os.ReadFile(target)
	want, _ := os.ReadFile(img)
	for _, r := range m.Ranges {
		off, n := m.Bytes(r)
		if !bytes.Equal(got[off:off+n], want[off:off+n]) {
			t.Errorf("range %+v differs", r)
		}
	}
}

func TestFlashVerifyCatchesCorruptImage(t *testing.T) {
	img, m := image(t)
	m.Ranges[1].SHA256 = m.Ranges[0].SHA256
	_, err := Flash(img, m, filepath.Join(t.TempDir(), "t"), Options{})
	if !errors.Is(err, ErrVerify) {
		t.Errorf("Flash() = %v, want ErrVerify", err)
	}
}

func TestRefusesSystemDisk(t *testing.T) {
	// The block device holding / is refused without Force.
	var dev string
	for _, c := range []string{"/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/xvda"} {
		if _, err := os.Stat(c); err == nil {
			dev = c
			break
		}
	}
	if dev == "" {
		t.Skip("no system disk device node found")
	}
	if err := checkTarget(dev); !errors.Is(err, ErrTargetBusy) {
		t.Skipf("checkTarget(%s) = %v; not the system disk here", dev, err)
	}
}
