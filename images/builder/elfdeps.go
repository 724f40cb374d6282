package builder

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrMissingLib means a shared library a program needs was not found on the
// build host.
var ErrMissingLib = errors.New("shared library not found")

// libDirs are searched for DT_NEEDED names, as ld.so would on Debian amd64.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// sharedDeps returns the absolute host paths of everything the ELF program
// at path needs at run time: its interpreter (PT_INTERP) and the transitive
// closure of DT_NEEDED libraries, found like ld.so does (RUNPATH of the
// object, then the system directories). It reads ELF headers only, so it
// works for programs of the build host's architecture without running them
// (unlike ldd).
func sharedDeps(path string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	var walk func(p string) error
	walk = func(p string) error {
		f, err := elf.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				b := make([]byte, prog.Filesz)
				if _, err := prog.ReadAt(b, 0); err != nil {
					return err
				}
				interp := string(b[:len(b)-1])
				if !seen[interp] {
					seen[interp] = true
					out = append(out, interp)
				}
			}
		}
		needed, err := f.DynString(elf.DT_NEEDED)
		if err != nil {
			return nil // static
		}
		dirs := libDirs
		if rp, _ := f.DynString(elf.DT_RUNPATH); len(rp) > 0 {
			dirs = append(filepath.SplitList(rp[0]), dirs...)
		}
		for _, n := range needed {
			found := ""
			for _, d := range dirs {
				c := filepath.Join(d, n)
				if _, err := os.Stat(c); err == nil {
					found = c
					break
				}
			}
			if found == "" {
				return fmt.Errorf("%s needs %s: %w", p, n, ErrMissingLib)
			}
			if seen[found] {
				continue
			}
			seen[found] = true
			out = append(out, found)
			if err := walk(found); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(path); err != nil {
		return nil, err
	}
	return out, nil
}
