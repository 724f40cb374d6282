package builder

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// tree is a filesystem to be built: destination path → entry. It is hashed
// for the cache key and materialised as a directory (for mke2fs -d) or a
// cpio archive (for the initramfs).
type tree map[string]entry

type entry struct {
	src  string // host file to copy
	data []byte // or literal content
	link string // or symlink target
	hard string // or hard link to this tree path (regular files only)
	dir  bool   // or directory
	mode fs.FileMode
}

func (t tree) file(dst, src string, mode fs.FileMode) { t[clean(dst)] = entry{src: src, mode: mode} }
func (t tree) data(dst string, b []byte, mode fs.FileMode) {
	t[clean(dst)] = entry{data: b, mode: mode}
}
func (t tree) symlink(dst, target string) { t[clean(dst)] = entry{link: target, mode: 0o777} }

// hardlink makes dst another name of the tree's file at target (for
// programs that refuse symlinks, like the OTA agent's health.d scan).
func (t tree) hardlink(dst, target string) { t[clean(dst)] = entry{hard: clean(target)} }

func (t tree) mkdir(dst string, mode fs.FileMode) {
	t[clean(dst)] = entry{dir: true, mode: mode}
}

func clean(p string) string { return strings.TrimPrefix(filepath.Clean("/"+p), "/") }

func (t tree) paths() []string {
	ps := make([]string, 0, len(t))
	for p := range t {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// addTo hashes the tree into k.
func (t tree) addTo(k *key) error {
	for _, p := range t.paths() {
		e := t[p]
		switch {
		case e.dir:
			k.str("dir", fmt.Sprintf("%s %o", p, e.mode))
		case e.link != "":
			k.str("link", p+" -> "+e.link)
		case e.hard != "":
			k.str("hard", p+" => "+e.hard)
		case e.src != "":
			sum, err := fileHash(e.src)
			if err != nil {
				return err
			}
			k.str("file", fmt.Sprintf("%s %o %s", p, e.mode, sum))
		default:
			k.str("data", fmt.Sprintf("%s %o %x", p, e.mode, hashBytes(e.data)))
		}
	}
	return nil
}

// materialise writes the tree under root, creating parent directories.
func (t tree) materialise(root string) error {
	for _, p := range t.paths() {
		e := t[p]
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		switch {
		case e.hard != "":
			continue // second pass, once the target exists
		case e.dir:
			if err := os.MkdirAll(dst, e.mode); err != nil {
				return err
			}
		case e.link != "":
			if err := os.Symlink(e.link, dst); err != nil {
				return err
			}
		case e.src != "":
			if err := copyFile(e.src, dst, e.mode); err != nil {
				return err
			}
		default:
			if err := os.WriteFile(dst, e.data, e.mode); err != nil {
				return err
			}
		}
	}
	for _, p := range t.paths() {
		if e := t[p]; e.hard != "" {
			if err := os.Link(filepath.Join(root, e.hard), filepath.Join(root, p)); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeCPIO writes the tree as a newc archive (u-root's cpio writer), with
// parent directories first, owner root and zero timestamps, so the same
// tree always gives the same bytes.
func (t tree) writeCPIO(w io.Writer) error { return t.writeCPIOWith(w) }

// writeCPIOWith writes the tree plus extra records (device nodes).
func (t tree) writeCPIOWith(w io.Writer, extra ...cpio.Record) error {
	rw := cpio.Newc.Writer(w)
	var recs []cpio.Record
	for _, p := range t.paths() {
		e := t[p]
		switch {
		case e.dir:
			recs = append(recs, cpio.Directory(p, uint64(e.mode)))
		case e.link != "":
			recs = append(recs, cpio.Symlink(p, e.link))
		default:
			b := e.data
			if e.src != "" {
				var err error
				if b, err = os.ReadFile(e.src); err != nil {
					return err
				}
			}
			recs = append(recs, cpio.StaticFile(p, string(b), uint64(e.mode)))
		}
	}
	recs = append(recs, extra...)
	cpio.MakeAllReproducible(recs)
	if err := cpio.WriteRecordsAndDirs(rw, recs); err != nil {
		return err
	}
	return cpio.WriteTrailer(rw)
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
