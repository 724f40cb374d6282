package install

import (
	"os"
	"syscall"
)

// isMountedRoot reports whether device is the block device mounted at /.
func isMountedRoot(device string) bool {
	var dev, root syscall.Stat_t
	if syscall.Stat(device, &dev) != nil || syscall.Stat("/", &root) != nil {
		return false
	}
	return dev.Mode&syscall.S_IFMT == syscall.S_IFBLK && dev.Rdev == root.Dev
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
	n, err := f.Seek(0, 2)
	if err != nil {
		return 0
	}
	return n
}
