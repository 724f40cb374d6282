package bootenv

import (
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctls of mtd-abi.h: _IOR('M', 1, struct mtd_info_user),
// _IOW('M', 2, struct erase_info_user), _IOW('M', 6, ...) and
// _IOW('M', 11, __kernel_loff_t).
const (
	memGetInfo     = 0x80204d01
	memErase       = 0x40084d02
	memUnlock      = 0x40084d06
	memGetBadBlock = 0x40084d0b
)

type mtdDev struct {
	f  *os.File
	in mtdInfo
}

// openFlash opens an MTD character device and reads its geometry.
func openFlash(path string, write bool) (flash, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	// struct mtd_info_user: u8 type, u32 flags, size, erasesize,
	// writesize, oobsize, u64 padding (32 bytes with C alignment).
	var raw [32]byte
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), memGetInfo, uintptr(unsafe.Pointer(&raw[0]))); errno != 0 {
		f.Close()
		return nil, fmt.Errorf("%s: MEMGETINFO: %w (not an MTD device?): %w", path, errno, ErrMTD)
	}
	d := &mtdDev{f: f, in: mtdInfo{
		Type:      raw[0],
		Size:      binary.NativeEndian.Uint32(raw[8:]),
		EraseSize: binary.NativeEndian.Uint32(raw[12:]),
	}}
	if d.in.EraseSize == 0 {
		f.Close()
		return nil, fmt.Errorf("%s: erase block size 0: %w", path, ErrMTD)
	}
	return d, nil
}

func (d *mtdDev) info() mtdInfo { return d.in }

func (d *mtdDev) readAt(p []byte, off int64) error {
	_, err := d.f.ReadAt(p, off)
	return err
}

func (d *mtdDev) writeAt(p []byte, off int64) error {
	_, err := d.f.WriteAt(p, off)
	return err
}

// erase unlocks (where the chip has locking; errors ignored, as
// libubootenv) and erases n bytes at off.
func (d *mtdDev) erase(off, n int64) error {
	var ei [8]byte // struct erase_info_user: u32 start, u32 length
	binary.NativeEndian.PutUint32(ei[0:], uint32(off))
	binary.NativeEndian.PutUint32(ei[4:], uint32(n))
	_, _, _ = unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), memUnlock, uintptr(unsafe.Pointer(&ei[0])))
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), memErase, uintptr(unsafe.Pointer(&ei[0]))); errno != 0 {
		return errno
	}
	return nil
}

func (d *mtdDev) isBad(off int64) (bool, error) {
	o := off
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, d.f.Fd(), memGetBadBlock, uintptr(unsafe.Pointer(&o)))
	if errno != 0 {
		return false, errno
	}
	return r > 0, nil
}

func (d *mtdDev) Close() error { return d.f.Close() }
