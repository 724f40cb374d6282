package bmap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sparseFile writes data at the given offsets into a file of size bytes,
// leaving the rest as holes.
func sparseFile(t *testing.T, size int64, chunks map[int64][]byte) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for off, b := range chunks {
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestCreateMarshalParse(t *testing.T) {
	const bs = 4096
	a := bytes.Repeat([]byte{1}, 2*bs)
	b := bytes.Repeat([]byte{2}, 100)
	f := sparseFile(t, 1<<20+100, map[int64][]byte{0: a, 512 * 1024: b, 1 << 20: b})
	m, err := Create(f, bs)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Ranges) < 3 || m.Ranges[0].First != 0 {
		t.Fatalf("ranges = %+v", m.Ranges)
	}
	// The first range covers exactly what was written (hole granularity is
	// the filesystem block, 4 KiB here).
	h := sha256.Sum256(a)
	if m.Ranges[0].Last != 1 || m.Ranges[0].SHA256 != hex.EncodeToString(h[:]) {
		t.Errorf("range 0 = %+v", m.Ranges[0])
	}
	got, err := Parse(m.Marshal())
	if err != nil {
		t.Fatalf("Parse(Marshal()) = %v", err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestParseRejects(t *testing.T) {
	m := &Map{ImageSize: 40960, BlockSize: 4096, Ranges: []Range{{0, 1, hex64('a')}, {5, 6, hex64('b')}}}
	good := m.Marshal()
	if _, err := Parse(good); err != nil {
		t.Fatal(err)
	}
	tamper := bytes.Replace(good, []byte("> 5-6 <"), []byte("> 5-7 <"), 1)
	if _, err := Parse(tamper); !errors.Is(err, ErrChecksum) {
		t.Errorf("tampered: %v, want ErrChecksum", err)
	}
	for name, mm := range map[string]*Map{
		"overlap":      {ImageSize: 40960, BlockSize: 4096, Ranges: []Range{{0, 3, hex64('a')}, {2, 6, hex64('b')}}},
		"out of image": {ImageSize: 40960, BlockSize: 4096, Ranges: []Range{{9, 10, hex64('a')}}},
		"block size":   {ImageSize: 40960, BlockSize: 3000},
	} {
		if _, err := Parse(mm.Marshal()); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}

func hex64(c byte) string { return string(bytes.Repeat([]byte{c}, 64)) }

func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/small.bmap"); err == nil {
		f.Add(b)
	}
	f.Add((&Map{ImageSize: 40960, BlockSize: 4096, Ranges: []Range{{0, 1, hex64('a')}}}).Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		if _, err := Parse(m.Marshal()); err != nil {
			t.Fatalf("re-marshalled map does not parse: %v", err)
		}
	})
}
