//go:build !linux

package bmap

import "os"

// Extents treats the whole file as data where holes cannot be queried.
func Extents(_ *os.File, size int64) ([][2]int64, error) {
	if size == 0 {
		return nil, nil
	}
	return [][2]int64{{0, size}}, nil
}
