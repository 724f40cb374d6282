package install

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// mountedAt returns the mount point of the block device at path (the
// mounted root included), or "" when it is not mounted or not a block
// device.
func mountedAt(path string) string {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFBLK {
		return ""
	}
	var root syscall.Stat_t
	if syscall.Stat("/", &root) == nil && uint64(root.Dev) == uint64(st.Rdev) {
		return "/"
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	return mountPointOf(f, uint32(st.Rdev>>8&0xfff|st.Rdev>>32&^0xfff), uint32(st.Rdev&0xff|st.Rdev>>12&^0xff))
}

// mountPointOf scans mountinfo for a mount of device major:minor.
func mountPointOf(r io.Reader, major, minor uint32) string {
	want := strconv.FormatUint(uint64(major), 10) + ":" + strconv.FormatUint(uint64(minor), 10)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw
		f := strings.Fields(sc.Text())
		if len(f) > 4 && f[2] == want {
			return f[4]
		}
	}
	return ""
}

// blockDeviceSize returns the size of a block device, 0 for anything else.
func blockDeviceSize(device string) int64 {
	fi, err := os.Stat(device)
	if err != nil || fi.Mode()&os.ModeDevice == 0 {
		return 0
	}
	f, err := os.Open(device)
	if err != nil {
		return 0
	}
	defer f.Close()
	n, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0
	}
	return n
}
