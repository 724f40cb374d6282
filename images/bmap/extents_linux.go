package bmap

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Extents returns the [start, end) byte extents of f that hold data,
// using SEEK_DATA/SEEK_HOLE.
func Extents(f *os.File, size int64) ([][2]int64, error) {
	var out [][2]int64
	fd := int(f.Fd())
	var off int64
	for off < size {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data after off
		}
		if err != nil {
			return nil, err
		}
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		out = append(out, [2]int64{d, min(h, size)})
		off = h
	}
	_, err := f.Seek(0, 0)
	return out, err
}
