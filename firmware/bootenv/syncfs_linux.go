package bootenv

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFS flushes the whole filesystem holding d. fsync of a file and of
// its directory is not enough on vfat (the ESP holding grubenv): the
// renamed directory entry can stay in a dirty buffer, and a power cut
// then leaves the old environment in place although the write returned
// (seen in images/vmtest's TestPowerCutAtEnvSwitch). syncfs writes back
// the filesystem's block device buffers too.
func syncFS(d *os.File) error { return unix.Syncfs(int(d.Fd())) }
