package gpt

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	ugpt "github.com/u-root/u-root/pkg/mount/gpt"
)

const MiB = 1 << 20

func layout() *Table {
	return &Table{
		DiskSize: 64 * MiB,
		DiskGUID: NewGUID("test"),
		Partitions: []Partition{
			{Name: "esp", Type: TypeEFISystem, Start: 1 * MiB, Size: 8 * MiB},
			{Name: "rootfsA", Type: TypeLinuxFS, Start: 9 * MiB, Size: 20 * MiB},
			{Name: "rootfsB", Type: TypeLinuxFS, Start: 29 * MiB, Size: 20 * MiB},
			{Name: "data", Type: TypeLinuxFS, Start: 49 * MiB, Size: 14 * MiB},
		},
	}
}

func writeImage(t *testing.T, tb *Table) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(tb.DiskSize); err != nil {
		t.Fatal(err)
	}
	if err := tb.Write(f); err != nil {
		t.Fatal(err)
	}
	return p
}

// u-root's reader (an independent implementation) checks both headers and
// CRCs and finds our partitions.
func TestReadBackWithURoot(t *testing.T) {
	tb := layout()
	p := writeImage(t, tb)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pt, err := ugpt.New(f)
	if err != nil {
		t.Fatalf("u-root gpt.New: %v", err)
	}
	for i, want := range tb.Partitions {
		got := pt.Primary.Parts[i]
		if partName(got.Name) != want.Name {
			t.Errorf("part %d name = %q, want %q", i+1, partName(got.Name), want.Name)
		}
		if int64(got.FirstLBA)*SectorSize != want.Start || int64(got.LastLBA+1)*SectorSize != want.Start+want.Size {
			t.Errorf("part %d LBA %d..%d, want %d+%d bytes", i+1, got.FirstLBA, got.LastLBA, want.Start, want.Size)
		}
		if !strings.EqualFold(got.PartGUID.String(), want.Type) {
			t.Errorf("part %d type = %s, want %s", i+1, got.PartGUID.String(), want.Type)
		}
	}
}

func partName(n ugpt.PartName) string {
	var u []uint16
	for i := 0; i+1 < len(n); i += 2 {
		c := binary.LittleEndian.Uint16(n[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// sgdisk, when installed, verifies the whole table.
func TestSgdiskVerify(t *testing.T) {
	sg, err := exec.LookPath("sgdisk")
	if err != nil {
		t.Skip("sgdisk not installed")
	}
	p := writeImage(t, layout())
	out, err := exec.Command(sg, "-v", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("sgdisk -v: %v\n%s", err, out)
	}
	out, err = exec.Command(sg, "-i", "2", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "'rootfsA'") {
		t.Errorf("sgdisk -i 2: %v\n%s", err, out)
	}
}

func TestCheckRejects(t *testing.T) {
	for name, mod := range map[string]func(*Table){
		"overlap":       func(t *Table) { t.Partitions[1].Start = 5 * MiB },
		"past end":      func(t *Table) { t.Partitions[3].Size = 20 * MiB },
		"before usable": func(t *Table) { t.Partitions[0].Start = 0 },
		"unaligned":     func(t *Table) { t.Partitions[0].Size = 1000 },
		"bad type":      func(t *Table) { t.Partitions[0].Type = "nope" },
		"long name":     func(t *Table) { t.Partitions[0].Name = strings.Repeat("x", 37) },
	} {
		t.Run(name, func(t *testing.T) {
			tb := layout()
			mod(tb)
			if err := tb.Check(); !errors.Is(err, ErrLayout) {
				t.Errorf("Check() = %v, want ErrLayout", err)
			}
		})
	}
}
