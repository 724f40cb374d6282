package flash

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// host is what the busy-target check reads of the running system; tests
// give it a fake sysfs tree, root device and mountinfo.
type host struct {
	sys       string                            // sysfs mount point
	rootDev   func() (uint64, error)            // st_dev of /
	mountinfo func() (io.ReadCloser, error)     // /proc/self/mountinfo
	devOf     func(path string) (uint64, error) // st_rdev of a device node
}

var realHost = host{
	sys: "/sys",
	rootDev: func() (uint64, error) {
		var st unix.Stat_t
		err := unix.Stat("/", &st)
		return st.Dev, err
	},
	mountinfo: func() (io.ReadCloser, error) { return os.Open("/proc/self/mountinfo") },
	devOf: func(path string) (uint64, error) {
		var st unix.Stat_t
		err := unix.Stat(path, &st)
		return st.Rdev, err
	},
}

// checkTarget refuses a block device that is mounted, has a mounted
// partition, holds / (the running system), or is, whole or in part, under
// another block device (LVM, dm-crypt, RAID: sysfs holders), which may be
// mounted or swapped on under another number. Regular files pass: whether
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
	if part, holder, ok := h.heldPart(disk); ok {
		return fmt.Errorf("%s: %s is in use by %s: %w", path, part, holder, ErrTargetBusy)
	}
	f, err := h.mountinfo()
	if err != nil {
		return err
	}
	defer f.Close()
	m, ok, err := findMounted(f, func(m mount) bool { return h.mountDisk(m) == disk })
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

// mountDisk is the disk a mount's files live on. Filesystems that span
// devices (btrfs) show an anonymous 0:N number; their source names the
// device instead.
func (h host) mountDisk(m mount) string {
	if m.Major == 0 && strings.HasPrefix(m.Source, "/dev/") {
		if rdev, err := h.devOf(m.Source); err == nil {
			return h.diskOf(unix.Major(rdev), unix.Minor(rdev))
		}
	}
	return h.diskOf(m.Major, m.Minor)
}

// heldPart reports the first of disk and its partitions with a holder
// (a device-mapper or md device built on it), naming the holder as
// "dm-0 (vg-data)" when device-mapper knows a name.
func (h host) heldPart(disk string) (part, holder string, ok bool) {
	dirs := []string{disk}
	entries, _ := os.ReadDir(disk)
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(disk, e.Name(), "partition")); err == nil {
			dirs = append(dirs, filepath.Join(disk, e.Name()))
		}
	}
	for _, d := range dirs {
		hs, _ := os.ReadDir(filepath.Join(d, "holders"))
		if len(hs) == 0 {
			continue
		}
		name := hs[0].Name()
		if b, err := os.ReadFile(filepath.Join(d, "holders", name, "dm", "name")); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			name += " (" + strings.TrimSpace(string(b)) + ")"
		}
		return filepath.Base(d), name, true
	}
	return "", "", false
}
