package bootenv

import (
	"errors"
	"fmt"
	"strings"
)

// MTD flash types (mtd-abi.h) that U-Boot keeps environments on.
const (
	mtdNOR  = 3
	mtdNAND = 4
)

// ErrMTD marks an MTD device the environment cannot be kept on (another
// flash type, a UBI volume, or a platform without MTD).
var ErrMTD = errors.New("unsupported MTD device")

// mtdInfo is what MEMGETINFO tells of a flash device.
type mtdInfo struct {
	Type      uint8
	Size      uint32
	EraseSize uint32
}

// flash is an open MTD character device. The Linux implementation wraps
// the ioctls; tests of the block mapping use the same interface.
type flash interface {
	info() mtdInfo
	readAt(p []byte, off int64) error
	writeAt(p []byte, off int64) error
	erase(off, n int64) error
	isBad(off int64) (bool, error)
	Close() error
}

// isMTD reports whether a fw_env.config device names an MTD character
// device, as libubootenv decides it (by name). "/dev/mtdN:volume" is a UBI
// volume, which is not supported.
func isMTD(device string) bool {
	return strings.HasPrefix(device, "/dev/mtd")
}

// mtdLayout checks a copy against its flash and returns the sector size
// (the copy's, else the erase block) and how many sectors the copy may
// span on NAND, where bad blocks are skipped.
func mtdLayout(c UBootCopy, in mtdInfo) (sector, sectors int64, err error) {
	if strings.Contains(c.Device, ":") {
		return 0, 0, fmt.Errorf("%s: UBI volumes: %w", c.Device, ErrMTD)
	}
	if in.Type != mtdNOR && in.Type != mtdNAND {
		return 0, 0, fmt.Errorf("%s: flash type %d (only NOR and NAND hold U-Boot environments): %w", c.Device, in.Type, ErrMTD)
	}
	sector = c.SectorSize
	if sector == 0 {
		sector = int64(in.EraseSize)
	}
	if sector <= 0 || sector%int64(in.EraseSize) != 0 {
		return 0, 0, fmt.Errorf("%s: sector size %d is not a multiple of the erase block %d: %w", c.Device, sector, in.EraseSize, ErrFormat)
	}
	if c.Offset < 0 || c.Offset%int64(in.EraseSize) != 0 {
		return 0, 0, fmt.Errorf("%s: offset %#x is not at an erase block: %w", c.Device, c.Offset, ErrFormat)
	}
	need := (c.Size + sector - 1) / sector
	sectors = max(c.Sectors, need)
	if c.Offset+sectors*sector > int64(in.Size) {
		return 0, 0, fmt.Errorf("%s: %d sectors of %d at %#x pass the end of the %d-byte flash: %w", c.Device, sectors, sector, c.Offset, in.Size, ErrFormat)
	}
	return sector, sectors, nil
}

// mtdBlocks maps a copy to the flash offsets of its sectors: consecutive
// from the copy's offset, skipping bad blocks on NAND, within the copy's
// sectors (as libubootenv, so both find the same data).
func mtdBlocks(f flash, c UBootCopy) (offs []int64, sector int64, err error) {
	sector, sectors, err := mtdLayout(c, f.info())
	if err != nil {
		return nil, 0, err
	}
	need := (c.Size + sector - 1) / sector
	off := c.Offset
	for range sectors {
		if int64(len(offs)) == need {
			break
		}
		if f.info().Type == mtdNAND {
			bad, err := f.isBad(off)
			if err != nil {
				return nil, 0, fmt.Errorf("%s: bad block check at %#x: %w", c.Device, off, err)
			}
			if bad {
				off += sector
				continue
			}
		}
		offs = append(offs, off)
		off += sector
	}
	if int64(len(offs)) < need {
		return nil, 0, fmt.Errorf("%s: too many bad blocks in the %d sectors at %#x: %w", c.Device, sectors, c.Offset, ErrNoEnv)
	}
	return offs, sector, nil
}

// readMTD reads a copy from flash.
func readMTD(f flash, c UBootCopy) ([]byte, error) {
	offs, sector, err := mtdBlocks(f, c)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, c.Size)
	for i, off := range offs {
		part := buf[int64(i)*sector : min(int64(i+1)*sector, c.Size)]
		if err := f.readAt(part, off); err != nil {
			return nil, fmt.Errorf("%s: read at %#x: %w", c.Device, off, err)
		}
	}
	return buf, nil
}

// writeMTD erases each sector of a copy and writes it.
func writeMTD(f flash, c UBootCopy, raw []byte) error {
	offs, sector, err := mtdBlocks(f, c)
	if err != nil {
		return err
	}
	for i, off := range offs {
		part := raw[int64(i)*sector : min(int64(i+1)*sector, int64(len(raw)))]
		if err := f.erase(off, sector); err != nil {
			return fmt.Errorf("%s: erase at %#x: %w", c.Device, off, err)
		}
		if err := f.writeAt(part, off); err != nil {
			return fmt.Errorf("%s: write at %#x: %w", c.Device, off, err)
		}
	}
	return nil
}

// booleanFlags: on NOR flash libubootenv marks copies active (1) or
// obsolete (0) instead of counting: a NOR bit can be cleared without an
// erase, so the old copy is retired with a one-byte write after the new
// one is complete. Both copies must be of the same kind.
func (u *UBootEnv) booleanFlags() (bool, error) {
	if !u.redundant() || !isMTD(u.Copies[0].Device) {
		return false, nil
	}
	var types [2]uint8
	for i, c := range u.Copies {
		if !isMTD(c.Device) {
			return false, fmt.Errorf("redundant copies on %s and %s: one MTD, one not: %w", u.Copies[0].Device, c.Device, ErrFormat)
		}
		f, err := openFlash(c.Device, false)
		if err != nil {
			return false, err
		}
		types[i] = f.info().Type
		f.Close()
	}
	if types[0] != types[1] {
		return false, fmt.Errorf("redundant copies on flash of types %d and %d: %w", types[0], types[1], ErrFormat)
	}
	return types[0] == mtdNOR, nil
}

// currentBoolean picks the current copy of two valid ones under the
// boolean scheme, as libubootenv: the greater flag, and an erased flag
// (0xff, a copy written by U-Boot's first saveenv) wins.
func currentBoolean(f0, f1 byte) int {
	switch {
	case f1 == 0xff:
		return 1
	case f0 == 0xff:
		return 0
	case f1 > f0:
		return 1
	}
	return 0
}
