// Package gpt writes a GUID partition table (protective MBR, primary and
// backup headers and entry arrays) into a disk image file, so an image can be
// laid out without root, loop devices or sfdisk. Reading back is done with
// u-root's pkg/mount/gpt in the tests, an independent implementation.
package gpt

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// SectorSize is the logical sector size the table is written for.
const SectorSize = 512

const (
	numEntries = 128
	entrySize  = 128
	// entrySectors is the size of the entry array (16 KiB).
	entrySectors = numEntries * entrySize / SectorSize
)

// Well-known partition type GUIDs (string form, as printed by tools).
const (
	TypeEFISystem      = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeLinuxFS        = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	TypeLinuxRootX8664 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
)

// ErrLayout means the partitions do not fit the disk or overlap.
var ErrLayout = errors.New("invalid partition layout")

// Partition is one entry. Start and Size are in bytes and must be
// multiples of SectorSize.
type Partition struct {
	Name  string // up to 36 UTF-16 code units (the GPT partition label)
	Type  string // type GUID
	GUID  string // unique GUID; empty derives one from the disk GUID and name
	Start int64
	Size  int64
}

// Table is a disk layout.
type Table struct {
	DiskSize   int64 // bytes, a multiple of SectorSize
	DiskGUID   string
	Partitions []Partition
}

// FirstUsable and LastUsable bound the partitions (in bytes).
func (t *Table) FirstUsable() int64 { return (2 + entrySectors) * SectorSize }

// LastUsable is the offset of the last byte partitions may use plus one.
func (t *Table) LastUsable() int64 { return t.DiskSize - (1+entrySectors)*SectorSize }

// Check validates the layout.
func (t *Table) Check() error {
	if t.DiskSize%SectorSize != 0 || t.DiskSize < t.FirstUsable()+(1+entrySectors)*SectorSize {
		return fmt.Errorf("disk size %d: %w", t.DiskSize, ErrLayout)
	}
	if len(t.Partitions) > numEntries {
		return fmt.Errorf("%d partitions: %w", len(t.Partitions), ErrLayout)
	}
	if _, err := parseGUID(t.DiskGUID); err != nil {
		return err
	}
	for i, p := range t.Partitions {
		if p.Start%SectorSize != 0 || p.Size%SectorSize != 0 || p.Size <= 0 ||
			p.Start < t.FirstUsable() || p.Start+p.Size > t.LastUsable() {
			return fmt.Errorf("partition %d (%s) %d+%d: %w", i+1, p.Name, p.Start, p.Size, ErrLayout)
		}
		if len(utf16.Encode([]rune(p.Name))) > 36 {
			return fmt.Errorf("partition %d name %q too long: %w", i+1, p.Name, ErrLayout)
		}
		if _, err := parseGUID(p.Type); err != nil {
			return err
		}
		for j, q := range t.Partitions[:i] {
			if p.Start < q.Start+q.Size && q.Start < p.Start+p.Size {
				return fmt.Errorf("partitions %d and %d overlap: %w", j+1, i+1, ErrLayout)
			}
		}
	}
	return nil
}

// Write writes the protective MBR, both headers and both entry arrays to w,
// which must already be (or be extended to) DiskSize bytes. Partition data
// is not touched.
func (t *Table) Write(w io.WriterAt) error {
	if err := t.Check(); err != nil {
		return err
	}
	disk, _ := parseGUID(t.DiskGUID)
	entries := make([]byte, numEntries*entrySize)
	for i, p := range t.Partitions {
		e := entries[i*entrySize : (i+1)*entrySize]
		typ, _ := parseGUID(p.Type)
		copy(e[0:16], typ[:])
		id := p.GUID
		var uid [16]byte
		if id == "" {
			uid = derivedGUID(t.DiskGUID, p.Name)
		} else {
			var err error
			if uid, err = parseGUID(id); err != nil {
				return err
			}
		}
		copy(e[16:32], uid[:])
		binary.LittleEndian.PutUint64(e[32:], uint64(p.Start/SectorSize))
		binary.LittleEndian.PutUint64(e[40:], uint64((p.Start+p.Size)/SectorSize-1))
		for j, u := range utf16.Encode([]rune(p.Name)) {
			binary.LittleEndian.PutUint16(e[56+2*j:], u)
		}
	}
	entriesCRC := crc32.ChecksumIEEE(entries)
	last := uint64(t.DiskSize/SectorSize - 1)
	header := func(self, alt, entriesLBA uint64) []byte {
		h := make([]byte, SectorSize)
		copy(h, "EFI PART")
		binary.LittleEndian.PutUint32(h[8:], 0x00010000)
		binary.LittleEndian.PutUint32(h[12:], 92)
		binary.LittleEndian.PutUint64(h[24:], self)
		binary.LittleEndian.PutUint64(h[32:], alt)
		binary.LittleEndian.PutUint64(h[40:], uint64(t.FirstUsable()/SectorSize))
		binary.LittleEndian.PutUint64(h[48:], uint64(t.LastUsable()/SectorSize-1))
		copy(h[56:72], disk[:])
		binary.LittleEndian.PutUint64(h[72:], entriesLBA)
		binary.LittleEndian.PutUint32(h[80:], numEntries)
		binary.LittleEndian.PutUint32(h[84:], entrySize)
		binary.LittleEndian.PutUint32(h[88:], entriesCRC)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
		return h
	}
	mbr := make([]byte, SectorSize)
	pe := mbr[446:462]
	pe[1], pe[2], pe[3] = 0x00, 0x02, 0x00 // CHS of LBA 1
	pe[4] = 0xEE
	pe[5], pe[6], pe[7] = 0xFF, 0xFF, 0xFF
	binary.LittleEndian.PutUint32(pe[8:], 1)
	sectors := min(last, 0xFFFFFFFF)
	binary.LittleEndian.PutUint32(pe[12:], uint32(sectors))
	mbr[510], mbr[511] = 0x55, 0xAA
	backupEntries := last - entrySectors
	for _, wr := range []struct {
		off  int64
		data []byte
	}{
		{0, mbr},
		{SectorSize, header(1, last, 2)},
		{2 * SectorSize, entries},
		{int64(backupEntries) * SectorSize, entries},
		{int64(last) * SectorSize, header(last, 1, backupEntries)},
	} {
		if _, err := w.WriteAt(wr.data, wr.off); err != nil {
			return err
		}
	}
	return nil
}

// parseGUID converts "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" to its on-disk
// mixed-endian bytes.
func parseGUID(s string) ([16]byte, error) {
	var g [16]byte
	var hex []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			hex = append(hex, s[i])
		}
	}
	if len(hex) != 32 || len(s) != 36 {
		return g, fmt.Errorf("GUID %q: %w", s, ErrLayout)
	}
	var raw [16]byte
	for i := range 16 {
		hi, ok1 := unhex(hex[2*i])
		lo, ok2 := unhex(hex[2*i+1])
		if !ok1 || !ok2 {
			return g, fmt.Errorf("GUID %q: %w", s, ErrLayout)
		}
		raw[i] = hi<<4 | lo
	}
	// The first three fields are little endian on disk.
	g[0], g[1], g[2], g[3] = raw[3], raw[2], raw[1], raw[0]
	g[4], g[5] = raw[5], raw[4]
	g[6], g[7] = raw[7], raw[6]
	copy(g[8:], raw[8:])
	return g, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// derivedGUID makes a stable partition GUID (version 4 layout) from the disk
// GUID and the partition name, so rebuilt images are byte-identical.
func derivedGUID(disk, name string) [16]byte {
	sum := sha256.Sum256([]byte(disk + "/" + name))
	var g [16]byte
	copy(g[:], sum[:16])
	g[7] = g[7]&0x0F | 0x40 // version 4, in the little-endian third field
	g[8] = g[8]&0x3F | 0x80 // variant
	return g
}

// NewGUID derives a stable GUID string from a seed (for the disk GUID).
func NewGUID(seed string) string {
	s := sha256.Sum256([]byte(seed))
	s[6] = s[6]&0x0F | 0x40
	s[8] = s[8]&0x3F | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}
