package flash

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
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

func TestVerifyDetectsBadTarget(t *testing.T) {
	// A hand-made map, so the holes do not depend on the temp filesystem
	// supporting SEEK_HOLE: blocks 0-1, 8-9 and the partial last block 16
	// (1000 bytes) hold data; the other blocks are holes ("don't care",
	// see package bmap), which Verify must not read.
	const bs = 4096
	size := int64(16*bs + 1000)
	data := make([]byte, size)
	m := &bmap.Map{ImageSize: size, BlockSize: bs}
	for i, r := range [][2]int64{{0, 1}, {8, 9}, {16, 16}} {
		rg := bmap.Range{First: r[0], Last: r[1]}
		off, n := m.Bytes(rg)
		for j := off; j < off+n; j++ {
			data[j] = byte('A'+i) ^ byte(j)
		}
		sum := sha256.Sum256(data[off : off+n])
		rg.SHA256 = hex.EncodeToString(sum[:])
		m.Ranges = append(m.Ranges, rg)
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		off     int64
		wantErr string // "" when Verify must pass
	}{
		{"first byte", 0, "blocks 0-1:"},
		{"middle of a range", 8*bs + 100, "blocks 8-9:"},
		{"last byte of a range", 10*bs - 1, "blocks 8-9:"},
		{"last byte of the image", size - 1, "blocks 16-16:"},
		{"first byte of a hole", 2 * bs, ""},
		{"byte after a range", 10 * bs, ""},
		{"inside a hole", 5*bs + 7, ""},
		{"past the image", size, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The target starts dirty and longer than the image, so its
			// holes already differ from the image's.
			target := filepath.Join(t.TempDir(), "target")
			if err := os.WriteFile(target, bytes.Repeat([]byte{'x'}, int(size)+bs), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := Flash(img, m, target, Options{}); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(target, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, tc.off); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0x01
			if _, err := f.WriteAt(b, tc.off); err != nil {
				t.Fatal(err)
			}
			err = Verify(f, m)
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("Verify() after flipping byte %d = %v, want nil", tc.off, err)
				}
				return
			}
			if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Verify() after flipping byte %d = %v, want ErrVerify naming %q", tc.off, err, tc.wantErr)
			}
		})
	}
}

func TestVerifyShortTarget(t *testing.T) {
	// A target that ends inside a mapped range fails, it does not pass
	// on the bytes it has.
	img, m := image(t)
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	last := m.Ranges[len(m.Ranges)-1]
	off, n := m.Bytes(last)
	if err := Verify(bytes.NewReader(data[:off+n-1]), m); !errors.Is(err, ErrVerify) {
		t.Errorf("Verify(short target) = %v, want ErrVerify", err)
	}
	if err := Verify(bytes.NewReader(data), m); err != nil {
		t.Errorf("Verify(image itself) = %v, want nil", err)
	}
}
