//go:build !linux

package bootenv

import "fmt"

func openFlash(path string, _ bool) (flash, error) {
	return nil, fmt.Errorf("%s: MTD devices need Linux: %w", path, ErrMTD)
}
