package kmod

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// Load loads the modules at paths (relative to dir) in order. A module that
// is already loaded is fine. A module the hardware does not have (ENODEV,
// e.g. crc32c-intel on QEMU's CPU model) is logged and skipped; other errors
// are collected and returned after trying every module, so one bad module
// does not keep the disk from appearing.
func Load(log *slog.Logger, dir string, paths []string) error {
	var errs []error
	for _, p := range paths {
		if err := loadOne(filepath.Join(dir, p)); err != nil {
			if errors.Is(err, unix.ENODEV) {
				log.Info("module not applicable", "module", Name(p), "err", err)
				continue
			}
			errs = append(errs, fmt.Errorf("%s: %w", Name(p), err))
		}
	}
	return errors.Join(errs...)
}

func loadOne(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := kmodule.FileInit(f, "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}
