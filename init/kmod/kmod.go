// Package kmod works out which kernel modules an image needs and in which
// order to load them, from the kernel's modules.dep, and loads them at boot
// with u-root's kmodule.
//
// The Debian kernel builds virtio, ext4 and vfat as modules, so the image's
// initramfs carries them. The order is resolved once, on the build host
// (Resolve), and shipped as a list; the init then loads the list in order
// (Load), which needs neither modules.dep nor a resolver in the guest.
package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// Errors, checked with errors.Is.
var (
	// ErrNotFound means a requested module is not in modules.dep and not
	// built in.
	ErrNotFound = errors.New("module not found")
	// ErrSyntax means a malformed modules.dep line.
	ErrSyntax = errors.New("modules.dep syntax")
	// ErrCycle means modules.dep has circular dependencies.
	ErrCycle = errors.New("module dependency cycle")
)

// Deps is a parsed modules.dep: module path (relative to the module
// directory, as in the file) to its dependencies in the file's order.
type Deps struct {
	deps  map[string][]string
	byMod map[string]string // normalised module name → path
}

// ParseDeps reads modules.dep ("path: dep dep ...", one module a line).
func ParseDeps(r io.Reader) (*Deps, error) {
	d := &Deps{deps: map[string][]string{}, byMod: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		mod = strings.TrimSpace(mod)
		if !ok || mod == "" || strings.ContainsAny(mod, " \t") {
			return nil, fmt.Errorf("line %d %q: %w", n, line, ErrSyntax)
		}
		if _, dup := d.deps[mod]; dup {
			return nil, fmt.Errorf("line %d: %s listed twice: %w", n, mod, ErrSyntax)
		}
		d.deps[mod] = strings.Fields(rest)
		d.byMod[Name(mod)] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return d, nil
}

// Name returns the normalised module name of a path or name:
// "kernel/fs/ext4/ext4.ko.xz" and "ext4" give "ext4", "crc32c-generic" gives
// "crc32c_generic".
func Name(p string) string {
	b := path.Base(p)
	for _, ext := range []string{".xz", ".gz", ".zst"} {
		b = strings.TrimSuffix(b, ext)
	}
	b = strings.TrimSuffix(b, ".ko")
	return strings.ReplaceAll(b, "-", "_")
}

// Path returns the modules.dep path of a module name.
func (d *Deps) Path(name string) (string, bool) {
	p, ok := d.byMod[Name(name)]
	return p, ok
}

// Resolve returns the paths of the named modules and everything they depend
// on, each dependency before its users, each module once. Modules in
// builtin (names, as in modules.builtin) are skipped without error. The
// result depends only on the inputs' order.
func (d *Deps) Resolve(names []string, builtin map[string]bool) ([]string, error) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var out []string
	var visit func(p string, stack []string) error
	visit = func(p string, stack []string) error {
		if builtin[Name(p)] {
			return nil
		}
		switch state[p] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("%s: %w", strings.Join(append(stack, p), " -> "), ErrCycle)
		}
		deps, ok := d.deps[p]
		if !ok {
			return fmt.Errorf("%s (needed by %v): %w", p, stack, ErrNotFound)
		}
		state[p] = visiting
		// modules.dep lists the full closure with the deepest dependency
		// last (modprobe loads right to left), so walk it backwards.
		for i := len(deps) - 1; i >= 0; i-- {
			if err := visit(deps[i], append(stack, p)); err != nil {
				return err
			}
		}
		state[p] = done
		out = append(out, p)
		return nil
	}
	for _, n := range names {
		if builtin[Name(n)] {
			continue
		}
		p, ok := d.Path(n)
		if !ok {
			return nil, fmt.Errorf("%s: %w", n, ErrNotFound)
		}
		if err := visit(p, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ParseBuiltin reads modules.builtin (one path a line) into a set of names.
func ParseBuiltin(r io.Reader) (map[string]bool, error) {
	set := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			set[Name(l)] = true
		}
	}
	return set, sc.Err()
}
