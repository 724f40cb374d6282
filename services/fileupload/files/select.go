// Package files decides which local files an upload may read and reads them
// safely: globs with Kanto's access modes, no ".." and no symlink that leads
// outside what is allowed, and a reader that notices a file that vanishes,
// grows or shrinks while it is being uploaded.
package files

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Error categories. Callers turn them into an operation status.
var (
	// ErrNotPermitted marks a glob or path the configuration does not allow.
	ErrNotPermitted = errors.New("not permitted")
	// ErrNoFiles marks a request without any glob to upload.
	ErrNoFiles = errors.New("upload files not specified")
	// ErrBadGlob marks a malformed pattern.
	ErrBadGlob = errors.New("bad glob pattern")
	// ErrChanged marks a file that vanished, grew or shrank during upload.
	ErrChanged = errors.New("file changed during upload")
)

// Mode is how far a trigger's own glob may stray from the configured one.
type Mode string

// Access modes, as upstream.
const (
	Strict Mode = "strict" // the requested glob must equal the configured one
	Scoped Mode = "scoped" // the requested glob must match the configured one
	Lax    Mode = "lax"    // any glob
)

// ParseMode checks a mode name.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(s)); m {
	case Strict, Scoped, Lax:
		return m, nil
	}
	return "", fmt.Errorf("mode %q is not one of strict, scoped, lax: %w", s, ErrBadGlob)
}

// Policy is the configured glob and mode.
type Policy struct {
	Glob string // configured files glob; "" only with Lax
	Mode Mode
}

// Validate checks the configuration upstream refuses at start.
func (p Policy) Validate() error {
	if _, err := ParseMode(string(p.Mode)); err != nil {
		return err
	}
	if p.Glob == "" && p.Mode != Lax {
		return fmt.Errorf("files must be set unless mode is lax: %w", ErrNoFiles)
	}
	if p.Glob != "" {
		if _, err := filepath.Match(p.Glob, ""); err != nil {
			return fmt.Errorf("files %q: %w: %w", p.Glob, ErrBadGlob, err)
		}
	}
	return nil
}

// Resolve returns the glob a trigger uploads: requested when given (and
// allowed by the mode), else the configured one.
func (p Policy) Resolve(requested string) (string, error) {
	glob := p.Glob
	if requested != "" && !filepath.IsAbs(requested) {
		abs, err := filepath.Abs(requested)
		if err != nil {
			return "", fmt.Errorf("glob %q: %w: %w", requested, ErrBadGlob, err)
		}
		requested = abs
	}
	if requested != "" {
		switch p.Mode {
		case Strict:
			if requested != p.Glob {
				return "", fmt.Errorf("glob %q differs from the configured %q (mode strict): %w", requested, p.Glob, ErrNotPermitted)
			}
		case Scoped:
			ok, err := filepath.Match(p.Glob, requested)
			if err != nil || !ok {
				return "", fmt.Errorf("glob %q is not within the configured %q (mode scoped): %w", requested, p.Glob, ErrNotPermitted)
			}
		}
		glob = requested
	}
	if glob == "" {
		return "", ErrNoFiles
	}
	if hasDotDot(glob) {
		return "", fmt.Errorf("glob %q contains '..': %w", glob, ErrNotPermitted)
	}
	if _, err := filepath.Match(glob, ""); err != nil {
		return "", fmt.Errorf("glob %q: %w: %w", glob, ErrBadGlob, err)
	}
	return glob, nil
}

func hasDotDot(p string) bool {
	return slices.Contains(strings.Split(filepath.ToSlash(p), "/"), "..")
}

// Select lists the regular files glob matches, sorted. Matches that are
// directories or other special files are skipped. A symlink is followed only
// when its target is itself allowed (Allowed); one leading out is refused
// with ErrNotPermitted so the caller reports it rather than silently
// uploading less.
func (p Policy) Select(glob string) ([]string, error) {
	matches, err := filepath.Glob(glob)
	if err != nil {
		return nil, fmt.Errorf("glob %q: %w: %w", glob, ErrBadGlob, err)
	}
	var out []string
	for _, m := range matches {
		abs, err := filepath.Abs(m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // dangling link or gone since the glob ran
			}
			return nil, fmt.Errorf("%s: %w", abs, err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if err := p.Allowed(abs, glob); err != nil {
			return nil, err
		}
		out = append(out, abs)
	}
	return out, nil
}

// Allowed checks that path, after resolving every symlink, still matches
// the configured glob (or, without one, the glob the request used). This
// refuses "..", links out of the upload folder and links to other files.
func (p Policy) Allowed(path, requested string) error {
	if hasDotDot(path) {
		return fmt.Errorf("path %q contains '..': %w", path, ErrNotPermitted)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return p.allowedReal(path, real, requested)
}

func (p Policy) allowedReal(path, real, requested string) error {
	globs := []string{p.Glob, requested}
	if p.Mode == Lax && requested != "" {
		globs = globs[1:] // lax: the request's glob is the boundary
	}
	for _, g := range globs {
		if g == "" {
			continue
		}
		if ok, _ := matchResolved(g, real); !ok {
			return fmt.Errorf("%s resolves to %s, outside %q: %w", path, real, g, ErrNotPermitted)
		}
	}
	return nil
}

// matchResolved matches real against glob, also trying the glob with its
// literal directory prefix resolved (so /tmp/x/*.log matches when /tmp is a
// link).
func matchResolved(glob, real string) (bool, error) {
	if ok, err := filepath.Match(glob, real); ok || err != nil {
		return ok, err
	}
	dir, pattern := filepath.Split(glob)
	for dir != "" && dir != string(filepath.Separator) && hasMeta(dir) {
		var base string
		dir, base = filepath.Split(filepath.Clean(dir))
		pattern = filepath.Join(base, pattern)
	}
	if dir == "" {
		return false, nil
	}
	rd, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false, nil
	}
	return filepath.Match(filepath.Join(rd, pattern), real)
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }
