// Package bootenv reads and writes bootloader environments (GRUB's grubenv
// and U-Boot's single or redundant environment) and implements the Kanto A/B
// schemes over them (see firmware/BOOTENV.md).
//
// Every environment change is one atomic write: a grubenv is replaced with a
// temp file + fsync + rename + directory fsync; a redundant U-Boot
// environment is written to the non-current copy with a newer flags byte,
// fsynced and read back. A reader always sees the old or the new
// environment, never a mix.
package bootenv

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Store is a boot environment: read it whole, write a set of changes at once.
//
// Read returns the whole environment; a missing or invalid environment is
// ErrNoEnv. Write merges set into the current environment (a value of ""
// deletes the key) and stores the result in one atomic write; when it
// returns an error the previous environment is still the one read back,
// except for single-copy U-Boot environments, which cannot be written
// atomically. Implementations are safe for use by several processes at once
// (they lock), not for concurrent use of one value by several goroutines.
type Store interface {
	Read() (map[string]string, error)
	Write(set map[string]string) error
}

// Sentinel error categories.
var (
	// ErrNoEnv: no valid environment was found (missing file, bad header,
	// bad CRC on every copy).
	ErrNoEnv = errors.New("no valid boot environment")
	// ErrFormat: the environment is present but malformed.
	ErrFormat = errors.New("malformed boot environment")
	// ErrTooLarge: the new environment does not fit the fixed-size block.
	ErrTooLarge = errors.New("boot environment too large")
	// ErrInvalid: a key or value the format cannot hold.
	ErrInvalid = errors.New("invalid boot environment variable")
)

var (
	_ Store = (*GrubEnv)(nil)
	_ Store = (*UBootEnv)(nil)
)

// merge applies set to env (a copy); "" deletes.
func merge(env, set map[string]string) map[string]string {
	out := maps.Clone(env)
	if out == nil {
		out = map[string]string{}
	}
	for k, v := range set {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

func sortedKeys(env map[string]string) []string {
	return slices.Sorted(maps.Keys(env))
}

func checkKey(k string) error {
	if k == "" || strings.ContainsAny(k, "=\x00\n") {
		return fmt.Errorf("key %q: %w", k, ErrInvalid)
	}
	return nil
}

// WriteFileAtomic replaces path with data: a temp file in the same
// directory, fsync, rename over path, fsync of the directory. A crash at any
// point leaves either the old or the new file at path (and maybe a stale
// temp file named .<base>.tmp-*).
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeFileAtomic(path, data, perm, nil)
}

// writeFileAtomic takes a hook called after the temp file is written and
// before the rename; tests use it to simulate a power cut.
func writeFileAtomic(path string, data []byte, perm os.FileMode, beforeRename func(tmp string) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if beforeRename != nil {
		if err := beforeRename(tmp); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return err
	}
	return syncFS(d)
}
