package flash

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// checkTarget refuses a block device that is mounted, has a mounted
// partition, or holds / (the running system). Regular files are refused
// only when mounted through a loop device is unknowable cheaply, so they
// pass.
func checkTarget(path string) error {
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
	disk := diskOf(st.Rdev)
	var root unix.Stat_t
	if err := unix.Stat("/", &root); err == nil && diskOf(root.Dev) == disk {
		return fmt.Errorf("%s holds the running system: %w", path, ErrTargetBusy)
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw ... - ext3 /dev/root rw
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		var maj, min uint32
		if _, err := fmt.Sscanf(fields[2], "%d:%d", &maj, &min); err != nil {
			continue
		}
		if diskOf(unix.Mkdev(maj, min)) == disk {
			return fmt.Errorf("%s (or a partition of it) is mounted on %s: %w", path, fields[4], ErrTargetBusy)
		}
	}
	return sc.Err()
}

// diskOf maps a partition's device number to its whole disk's through
// sysfs (/sys/dev/block/M:m/partition exists for partitions).
func diskOf(dev uint64) string {
	p := fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(dev), unix.Minor(dev))
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return p
	}
	if _, err := os.Stat(filepath.Join(real, "partition")); err == nil {
		return filepath.Dir(real)
	}
	return real
}
