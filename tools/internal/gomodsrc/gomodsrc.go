// Package gomodsrc turns go.sum into bitbake gomod:// SRC_URI entries and
// reads them back, so a Yocto recipe fetches every Go module through
// bitbake's fetcher (no network during do_compile).
//
// One entry per module version in go.sum: a version with a zip hash
// ("mod v h1:...") becomes a full module entry; a version with only a go.mod
// hash ("mod v/go.mod h1:...") becomes a mod=1 entry. The sha256sum of an
// entry is the SHA-256 of the file the Go module proxy serves (the .zip or
// .mod), which go.sum does not hold: it is read from the local module cache.
package gomodsrc

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/mod/module"
)

// ErrSyntax marks a malformed go.sum or generated include file.
var ErrSyntax = errors.New("syntax error")

// ErrNotCached marks a module file missing from the local module cache.
var ErrNotCached = errors.New("module file not in the module cache")

// Entry is one gomod:// SRC_URI entry.
type Entry struct {
	Path    string // module path, unescaped (as in go.sum)
	Version string
	ModOnly bool   // mod=1: only the go.mod file is fetched
	SHA256  string // lowercase hex; "" when unknown
}

// Key identifies an entry independently of its checksum.
func (e Entry) Key() string {
	k := e.Path + "@" + e.Version
	if e.ModOnly {
		k += " mod=1"
	}
	return k
}

// URI renders the entry as bitbake writes it.
func (e Entry) URI() string {
	var b strings.Builder
	fmt.Fprintf(&b, "gomod://%s;version=%s", e.Path, e.Version)
	if e.ModOnly {
		b.WriteString(";mod=1")
	}
	if e.SHA256 != "" {
		fmt.Fprintf(&b, ";sha256sum=%s", e.SHA256)
	}
	return b.String()
}

// ParseGoSum returns the entries go.sum calls for, sorted by path and
// version, without checksums.
func ParseGoSum(r io.Reader) ([]Entry, error) {
	zips := map[[2]string]bool{}
	mods := map[[2]string]bool{}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || !strings.HasPrefix(f[2], "h1:") || f[0] == "" || f[1] == "" {
			return nil, fmt.Errorf("go.sum:%d: %q: %w", n, line, ErrSyntax)
		}
		v, modOnly := strings.CutSuffix(f[1], "/go.mod")
		// A path or version the go command would refuse cannot be fetched
		// either, and could smuggle ";" parameters into the SRC_URI entry.
		if err := module.Check(f[0], v); err != nil {
			return nil, fmt.Errorf("go.sum:%d: %v: %w", n, err, ErrSyntax)
		}
		if modOnly {
			mods[[2]string{f[0], v}] = true
		} else {
			zips[[2]string{f[0], v}] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read go.sum: %w", err)
	}
	var out []Entry
	for k := range zips {
		out = append(out, Entry{Path: k[0], Version: k[1]})
	}
	for k := range mods {
		if !zips[k] {
			out = append(out, Entry{Path: k[0], Version: k[1], ModOnly: true})
		}
	}
	Sort(out)
	return out, nil
}

// Sort orders entries by module path, then version, then kind.
func Sort(es []Entry) {
	sort.Slice(es, func(i, j int) bool { return es[i].Key() < es[j].Key() })
}

// Escape applies the module cache's case encoding ("!" + lower case).
func Escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// CachePath is where the module cache keeps the file an entry fetches.
func CachePath(modcache string, e Entry) string {
	ext := ".zip"
	if e.ModOnly {
		ext = ".mod"
	}
	return filepath.Join(modcache, "cache", "download", filepath.FromSlash(Escape(e.Path)), "@v", Escape(e.Version)+ext)
}

// Checksum returns the SHA-256 of the entry's file in the module cache; a
// missing file wraps ErrNotCached.
func Checksum(modcache string, e Entry) (string, error) {
	data, err := os.ReadFile(CachePath(modcache, e))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%s: %w", e.Key(), ErrNotCached)
		}
		return "", fmt.Errorf("checksum %s: %w", e.Key(), err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// Header starts the generated include file.
const Header = "# Generated from go.sum by `go run ./tools/yoctogen`; do not edit.\n" +
	"# tools/yoctolint fails when this list and go.sum differ.\n"

// Render writes the include file for entries (already sorted).
func Render(es []Entry) []byte {
	var b bytes.Buffer
	b.WriteString(Header)
	b.WriteString("SRC_URI += \"\\\n")
	for _, e := range es {
		fmt.Fprintf(&b, "    %s \\\n", e.URI())
	}
	b.WriteString("\"\n")
	return b.Bytes()
}

// ParseInc reads the gomod:// entries of a generated include file.
func ParseInc(r io.Reader) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		for _, tok := range strings.Fields(sc.Text()) {
			rest, ok := strings.CutPrefix(tok, "gomod://")
			if !ok {
				continue
			}
			parts := strings.Split(rest, ";")
			e := Entry{Path: parts[0]}
			for _, p := range parts[1:] {
				k, v, ok := strings.Cut(p, "=")
				if !ok {
					return nil, fmt.Errorf("line %d: parameter %q: %w", n, p, ErrSyntax)
				}
				switch k {
				case "version":
					e.Version = v
				case "mod":
					e.ModOnly = v == "1"
				case "sha256sum":
					e.SHA256 = v
				default:
					return nil, fmt.Errorf("line %d: unknown parameter %q: %w", n, k, ErrSyntax)
				}
			}
			if e.Path == "" || e.Version == "" {
				return nil, fmt.Errorf("line %d: %q needs a module path and a version: %w", n, tok, ErrSyntax)
			}
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read include: %w", err)
	}
	return out, nil
}
