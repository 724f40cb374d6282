package flash

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// errMountinfo: a line of mountinfo does not have the format of proc(5).
// The busy-target check fails closed on it: a line it cannot read might be
// the mount of the target.
var errMountinfo = errors.New("malformed mountinfo")

// mount is one line of /proc/<pid>/mountinfo (proc(5)):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//	(1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)    (10)        (11)
type mount struct {
	Major, Minor uint32 // st_dev of the files of the mount (3)
	Root         string // directory of the filesystem mounted here; not "/" for bind mounts (4)
	Point        string // mount point (5)
	FSType       string // (9)
	Source       string // (10), e.g. /dev/sda1, or "none"
}

// parseMountinfo reads the lines of a mountinfo file. Paths are unescaped
// (the kernel writes space, tab, newline and backslash as \ooo).
func parseMountinfo(r io.Reader) ([]mount, error) {
	var out []mount
	sc := bufio.NewScanner(r)
	// Mount options of overlay filesystems can make lines longer than
	// bufio's default 64 KiB token.
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		m, err := parseMountLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", errMountinfo, err)
	}
	return out, nil
}

func parseMountLine(line string) (mount, error) {
	var m mount
	f := strings.Fields(line)
	// Optional fields (7) end with a lone "-"; at least the mount options
	// (6) come before it and fstype and source after it.
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+2 >= len(f) {
		return m, fmt.Errorf("%q: %w", line, errMountinfo)
	}
	majS, minS, ok := strings.Cut(f[2], ":")
	if !ok {
		return m, fmt.Errorf("device %q: %w", f[2], errMountinfo)
	}
	maj, err1 := strconv.ParseUint(majS, 10, 32)
	mnr, err2 := strconv.ParseUint(minS, 10, 32)
	if err1 != nil || err2 != nil {
		return m, fmt.Errorf("device %q: %w", f[2], errMountinfo)
	}
	m.Major, m.Minor = uint32(maj), uint32(mnr)
	m.Root = unescapeMountinfo(f[3])
	m.Point = unescapeMountinfo(f[4])
	m.FSType = unescapeMountinfo(f[sep+1])
	m.Source = unescapeMountinfo(f[sep+2])
	return m, nil
}

// unescapeMountinfo undoes the kernel's \ooo escapes (three octal
// digits); anything else is kept as is.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		// \400 and up do not fit a byte, so the first digit is at most 3.
		if s[i] == '\\' && i+3 < len(s) && s[i+1] >= '0' && s[i+1] <= '3' && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// findMounted returns the first mount in mountinfo that onDisk accepts.
func findMounted(mountinfo io.Reader, onDisk func(mount) bool) (mount, bool, error) {
	mounts, err := parseMountinfo(mountinfo)
	if err != nil {
		return mount{}, false, err
	}
	for _, m := range mounts {
		if onDisk(m) {
			return m, true, nil
		}
	}
	return mount{}, false, nil
}
