package bootenv

import (
	"bytes"
	"errors"
	"testing"
)

// memFlash is flash in memory with NOR/NAND rules enough to check the
// block mapping: erase sets a block to 0xff, a write may only clear bits,
// bad blocks refuse both. The real kernel MTD layer is exercised by
// TestMTDInGuest inside a VM (images/vmtest).
type memFlash struct {
	in   mtdInfo
	data []byte
	bad  map[int64]bool
}

func newMemFlash(typ uint8, blocks int, erase uint32) *memFlash {
	return &memFlash{in: mtdInfo{Type: typ, Size: uint32(blocks) * erase, EraseSize: erase},
		data: bytes.Repeat([]byte{0xff}, blocks*int(erase)), bad: map[int64]bool{}}
}

func (m *memFlash) info() mtdInfo { return m.in }
func (m *memFlash) block(off int64) int64 {
	return off / int64(m.in.EraseSize) * int64(m.in.EraseSize)
}
func (m *memFlash) readAt(p []byte, off int64) error {
	copy(p, m.data[off:])
	return nil
}
func (m *memFlash) writeAt(p []byte, off int64) error {
	if m.bad[m.block(off)] {
		return errors.New("write to a bad block")
	}
	for i, b := range p {
		if b&^m.data[off+int64(i)] != 0 {
			return errors.New("write sets a bit without an erase")
		}
		m.data[off+int64(i)] = b
	}
	return nil
}
func (m *memFlash) erase(off, n int64) error {
	if m.bad[m.block(off)] {
		return errors.New("erase of a bad block")
	}
	copy(m.data[off:off+n], bytes.Repeat([]byte{0xff}, int(n)))
	return nil
}
func (m *memFlash) isBad(off int64) (bool, error) { return m.bad[m.block(off)], nil }
func (m *memFlash) Close() error                  { return nil }

func TestMTDBlockMapping(t *testing.T) {
	const blk = 0x4000
	env := map[string]string{"BOOT_ORDER": "A B"}
	for _, tc := range []struct {
		name     string
		typ      uint8
		c        UBootCopy
		bad      []int64
		wantOffs []int64
		wantErr  error
	}{
		{"NAND, no bad block", mtdNAND, UBootCopy{Device: "/dev/mtd0", Offset: 0, Size: 2 * blk, Sectors: 3}, nil, []int64{0, blk}, nil},
		{"NAND, first block bad", mtdNAND, UBootCopy{Device: "/dev/mtd0", Offset: 0, Size: 2 * blk, Sectors: 3}, []int64{0}, []int64{blk, 2 * blk}, nil},
		{"NAND, too many bad", mtdNAND, UBootCopy{Device: "/dev/mtd0", Offset: 0, Size: blk, Sectors: 2}, []int64{0, blk}, nil, ErrNoEnv},
		{"NAND, sectors default to just enough", mtdNAND, UBootCopy{Device: "/dev/mtd0", Offset: blk, Size: blk}, []int64{blk}, nil, ErrNoEnv},
		{"NOR", mtdNOR, UBootCopy{Device: "/dev/mtd0", Offset: blk, Size: blk}, nil, []int64{blk}, nil},
		{"sector size of the config", mtdNOR, UBootCopy{Device: "/dev/mtd0", Offset: 0, Size: blk, SectorSize: 2 * blk}, nil, []int64{0}, nil},
		{"unaligned offset", mtdNAND, UBootCopy{Device: "/dev/mtd0", Offset: 0x200, Size: blk}, nil, nil, ErrFormat},
		{"sector not a multiple of the erase block", mtdNOR, UBootCopy{Device: "/dev/mtd0", Offset: 0, Size: blk, SectorSize: 0x1000}, nil, nil, ErrFormat},
		{"past the end", mtdNAND, UBootCopy{Device: "/dev/mtd0", Offset: 7 * blk, Size: 2 * blk}, nil, nil, ErrFormat},
		{"UBI volume", mtdNAND, UBootCopy{Device: "/dev/mtd0:env", Offset: 0, Size: blk}, nil, nil, ErrMTD},
		{"RAM flash", 1, UBootCopy{Device: "/dev/mtd0", Offset: 0, Size: blk}, nil, nil, ErrMTD},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newMemFlash(tc.typ, 8, blk)
			for _, b := range tc.bad {
				f.bad[b] = true
			}
			offs, _, err := mtdBlocks(f, tc.c)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("mtdBlocks: %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if len(offs) != len(tc.wantOffs) {
				t.Fatalf("blocks %#x, want %#x", offs, tc.wantOffs)
			}
			for i := range offs {
				if offs[i] != tc.wantOffs[i] {
					t.Fatalf("blocks %#x, want %#x", offs, tc.wantOffs)
				}
			}
			// Written twice (the second write needs the erase) and read
			// back through the same mapping.
			for i := range 2 {
				env["N"] = string(rune('0' + i))
				raw, err := EncodeUBootEnv(env, int(tc.c.Size), false, 0)
				if err != nil {
					t.Fatal(err)
				}
				if err := writeMTD(f, tc.c, raw); err != nil {
					t.Fatal(err)
				}
				back, err := readMTD(f, tc.c)
				if err != nil || !bytes.Equal(back, raw) {
					t.Fatalf("read back: %v (equal %v)", err, bytes.Equal(back, raw))
				}
			}
		})
	}
}

func TestCurrentBoolean(t *testing.T) {
	for _, tc := range []struct {
		f0, f1 byte
		want   int
	}{
		{1, 0, 0}, {0, 1, 1}, {1, 1, 0}, {0xff, 0, 0}, {0, 0xff, 1}, {0xff, 0xff, 1}, {0, 0, 0},
	} {
		if got := currentBoolean(tc.f0, tc.f1); got != tc.want {
			t.Errorf("currentBoolean(%#x, %#x) = %d, want %d", tc.f0, tc.f1, got, tc.want)
		}
	}
}
