package disk

import (
	"os"

	"golang.org/x/sys/unix"
)

// punch deallocates a byte range of f (it reads back as zeros), falling back
// to writing zeros where the filesystem cannot punch holes.
func punch(f *os.File, off, n int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err == nil {
		return nil
	}
	return zero(f, off, n)
}
