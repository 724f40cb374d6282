package bootenv

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// grubHeader starts every GRUB environment block (grub-core/lib/envblk.c).
const grubHeader = "# GRUB Environment Block\n"

// GrubBlockSize is the size grub-editenv creates; GRUB's save_env rewrites
// the block in place, so a file keeps its size.
const GrubBlockSize = 1024

// ParseGrubEnv parses a GRUB environment block. Lines starting with '#'
// are comments (Debian's grub-editenv adds a "# WARNING" line); the '#'
// padding is a run of comment characters. Values use '\' escapes for '\'
// and newline, as grub-editenv writes them.
func ParseGrubEnv(data []byte) (map[string]string, error) {
	if !bytes.HasPrefix(data, []byte(grubHeader)) {
		return nil, fmt.Errorf("missing %q header: %w", strings.TrimSpace(grubHeader), ErrNoEnv)
	}
	env := map[string]string{}
	p := data[len(grubHeader):]
	for len(p) > 0 {
		if p[0] == '#' {
			// A comment or the padding: skip to the end of the line.
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				break
			}
			p = p[i+1:]
			continue
		}
		if p[0] == '\n' {
			p = p[1:]
			continue
		}
		eq := bytes.IndexByte(p, '=')
		nl := bytes.IndexByte(p, '\n')
		if eq < 0 || (nl >= 0 && nl < eq) {
			return nil, fmt.Errorf("line without '=': %w", ErrFormat)
		}
		key := string(p[:eq])
		if err := checkKey(key); err != nil {
			return nil, fmt.Errorf("%w: %w", err, ErrFormat)
		}
		p = p[eq+1:]
		var val []byte
		for {
			if len(p) == 0 {
				return nil, fmt.Errorf("variable %q not terminated: %w", key, ErrFormat)
			}
			c := p[0]
			p = p[1:]
			if c == '\n' {
				break
			}
			if c == '\\' {
				if len(p) == 0 {
					return nil, fmt.Errorf("variable %q: dangling escape: %w", key, ErrFormat)
				}
				c = p[0]
				p = p[1:]
			}
			val = append(val, c)
		}
		env[key] = string(val)
	}
	return env, nil
}

// EncodeGrubEnv renders env as a GRUB environment block of size bytes
// (at least GrubBlockSize), keys sorted.
func EncodeGrubEnv(env map[string]string, size int) ([]byte, error) {
	if size < GrubBlockSize {
		size = GrubBlockSize
	}
	var b bytes.Buffer
	b.WriteString(grubHeader)
	for _, k := range sortedKeys(env) {
		if err := checkKey(k); err != nil {
			return nil, err
		}
		b.WriteString(k)
		b.WriteByte('=')
		for _, c := range []byte(env[k]) {
			if c == '\\' || c == '\n' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('\n')
	}
	if b.Len() > size {
		return nil, fmt.Errorf("%d bytes, block is %d: %w", b.Len(), size, ErrTooLarge)
	}
	out := b.Bytes()
	for len(out) < size {
		out = append(out, '#')
	}
	return out, nil
}

// GrubEnv is a grubenv file.
type GrubEnv struct {
	Path string
	// beforeRename is a test seam: called with the written temp file.
	beforeRename func(tmp string) error
}

// NewGrubEnv returns the grubenv at path.
func NewGrubEnv(path string) *GrubEnv { return &GrubEnv{Path: path} }

// Read implements Store.
func (g *GrubEnv) Read() (map[string]string, error) {
	data, err := os.ReadFile(g.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", g.Path, ErrNoEnv)
	}
	if err != nil {
		return nil, err
	}
	env, err := ParseGrubEnv(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", g.Path, err)
	}
	return env, nil
}

// Write implements Store. A missing file is created (as grub-editenv
// create would); an existing file keeps its size.
func (g *GrubEnv) Write(set map[string]string) error {
	for k := range set {
		if err := checkKey(k); err != nil {
			return err
		}
	}
	unlock, err := lockFile(g.Path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	size := GrubBlockSize
	cur := map[string]string{}
	data, err := os.ReadFile(g.Path)
	switch {
	case err == nil:
		if cur, err = ParseGrubEnv(data); err != nil {
			return fmt.Errorf("%s: %w", g.Path, err)
		}
		size = len(data)
	case errors.Is(err, fs.ErrNotExist):
	default:
		return err
	}
	out, err := EncodeGrubEnv(merge(cur, set), size)
	if err != nil {
		return fmt.Errorf("%s: %w", g.Path, err)
	}
	return writeFileAtomic(g.Path, out, 0o644, g.beforeRename)
}
