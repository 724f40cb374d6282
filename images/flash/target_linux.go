package flash

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// host is what the busy-target check reads of the running system; tests
// give it a fake sysfs tree, root device and mountinfo.
type host struct {
	sys       string                        // sysfs mount point
	rootDev   func() (uint64, error)        // st_dev of /
	mountinfo func() (io.ReadCloser, error) // /proc/self/mountinfo
}

var realHost = host{
	sys: "/sys",
	rootDev: func() (uint64, error) {
		var st unix.Stat_t
		err := unix.Stat("/", &st)
		return st.Dev, err
	},
	mountinfo: func() (io.ReadCloser, error) { return os.Open("/proc/self/mountinfo") },
}

// checkTarget refuses a block device that is mounted, has a mounted
// partition, or holds / (the running system). Regular files pass: whether
// one is mounted through a loop device is not cheaply knowable.
func checkTarget(path string) error { return realHost.check(path) }

func (h host) check(path string) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if os.IsNotExist(err) {
			return nil // a new file
		}
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return nil
	}
	return h.checkDevice(path, st.Rdev)
}

// checkDevice is check for the block device path whose number is rdev.
func (h host) checkDevice(path string, rdev uint64) error {
	disk := h.diskOf(unix.Major(rdev), unix.Minor(rdev))
	if root, err := h.rootDev(); err == nil && h.diskOf(unix.Major(root), unix.Minor(root)) == disk {
		return fmt.Errorf("%s holds the running system: %w", path, ErrTargetBusy)
	}
	f, err := h.mountinfo()
	if err != nil {
		return err
	}
	defer f.Close()
	m, ok, err := findMounted(f, func(major, minor uint32) bool { return h.diskOf(major, minor) == disk })
	if err != nil {
		return err
	}
	if ok {
		return fmt.Errorf("%s (or a partition of it) is mounted on %s: %w", path, m.Point, ErrTargetBusy)
	}
	return nil
}

// diskOf maps a partition's device number to its whole disk's through
// sysfs (<sys>/dev/block/M:m/partition exists for partitions). Numbers
// unknown to sysfs (e.g. the anonymous 0:N of tmpfs) map to themselves.
func (h host) diskOf(major, minor uint32) string {
	p := filepath.Join(h.sys, "dev", "block", fmt.Sprintf("%d:%d", major, minor))
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return p
	}
	if _, err := os.Stat(filepath.Join(real, "partition")); err == nil {
		return filepath.Dir(real)
	}
	return real
}
