package bootenv

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// UBootCopy is one copy of a U-Boot environment as fw_env.config names it.
type UBootCopy struct {
	Device string
	// Offset is from the start of Device; a negative one counts back from
	// its end (libubootenv does so for block devices; for files we take
	// the file's size).
	Offset int64
	Size   int64 // whole copy: CRC + (flags) + data
	// SectorSize is the erase unit on MTD flash (0: the erase block);
	// files and block devices do not need erasing.
	SectorSize int64
	// Sectors is how many sectors a copy may span on NAND flash, where
	// bad blocks are skipped (0: just enough for Size).
	Sectors int64
}

// ParseFwEnvConfig parses a fw_env.config: one or two lines of
// "device offset size [sector-size [sectors]]", '#' comments. Numbers are
// decimal or 0x hex; the offset may be negative (from the end).
func ParseFwEnvConfig(r io.Reader) ([]UBootCopy, error) {
	var copies []UBootCopy
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		t := sc.Text()
		if i := strings.IndexByte(t, '#'); i >= 0 {
			t = t[:i]
		}
		f := strings.Fields(t)
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("line %d: want device offset size: %w", line, ErrFormat)
		}
		c := UBootCopy{Device: f[0]}
		var err error
		if c.Offset, err = strconv.ParseInt(f[1], 0, 64); err != nil {
			return nil, fmt.Errorf("line %d: offset %q: %w", line, f[1], ErrFormat)
		}
		if c.Size, err = strconv.ParseInt(f[2], 0, 64); err != nil || c.Size < 16 || c.Size > 16<<20 {
			return nil, fmt.Errorf("line %d: size %q: %w", line, f[2], ErrFormat)
		}
		if len(f) > 3 {
			if c.SectorSize, err = strconv.ParseInt(f[3], 0, 64); err != nil || c.SectorSize < 0 {
				return nil, fmt.Errorf("line %d: sector size %q: %w", line, f[3], ErrFormat)
			}
		}
		if len(f) > 4 {
			if c.Sectors, err = strconv.ParseInt(f[4], 0, 64); err != nil || c.Sectors < 0 || c.Sectors > 1024 {
				return nil, fmt.Errorf("line %d: sectors %q: %w", line, f[4], ErrFormat)
			}
		}
		copies = append(copies, c)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	switch {
	case len(copies) == 0:
		return nil, fmt.Errorf("no environment in fw_env.config: %w", ErrFormat)
	case len(copies) > 2:
		return nil, fmt.Errorf("%d environments in fw_env.config, at most 2: %w", len(copies), ErrFormat)
	case len(copies) == 2 && copies[0].Size != copies[1].Size:
		return nil, fmt.Errorf("redundant copies differ in size: %w", ErrFormat)
	}
	return copies, nil
}

// ParseUBootEnv parses one copy (CRC, optional flags byte, data). It
// returns ErrNoEnv when the CRC does not match.
func ParseUBootEnv(raw []byte, redundant bool) (env map[string]string, flags byte, err error) {
	hdr := 4
	if redundant {
		hdr = 5
	}
	if len(raw) <= hdr {
		return nil, 0, fmt.Errorf("copy of %d bytes: %w", len(raw), ErrNoEnv)
	}
	data := raw[hdr:]
	if crc32.ChecksumIEEE(data) != binary.LittleEndian.Uint32(raw) {
		return nil, 0, fmt.Errorf("bad CRC: %w", ErrNoEnv)
	}
	if redundant {
		flags = raw[4]
	}
	env = map[string]string{}
	for len(data) > 0 && data[0] != 0 {
		i := bytes.IndexByte(data, 0)
		if i < 0 {
			return nil, 0, fmt.Errorf("unterminated variable: %w", ErrFormat)
		}
		kv := data[:i]
		data = data[i+1:]
		eq := bytes.IndexByte(kv, '=')
		if eq <= 0 {
			return nil, 0, fmt.Errorf("variable without '=': %w", ErrFormat)
		}
		env[string(kv[:eq])] = string(kv[eq+1:])
	}
	return env, flags, nil
}

// EncodeUBootEnv renders one copy of size bytes.
func EncodeUBootEnv(env map[string]string, size int, redundant bool, flags byte) ([]byte, error) {
	hdr := 4
	if redundant {
		hdr = 5
	}
	out := make([]byte, size)
	data := out[hdr:]
	n := 0
	for _, k := range sortedKeys(env) {
		v := env[k]
		if err := checkKey(k); err != nil {
			return nil, err
		}
		if strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("value of %q holds NUL: %w", k, ErrInvalid)
		}
		// Leave room for the terminating NUL and the final empty string.
		if n+len(k)+1+len(v)+1 >= len(data) {
			return nil, fmt.Errorf("environment over %d bytes: %w", len(data), ErrTooLarge)
		}
		n += copy(data[n:], k)
		data[n] = '='
		n++
		n += copy(data[n:], v)
		data[n] = 0
		n++
	}
	if redundant {
		out[4] = flags
	}
	binary.LittleEndian.PutUint32(out, crc32.ChecksumIEEE(data))
	return out, nil
}

// newer reports whether flags a is newer than b in libubootenv's
// incremental scheme (0 follows 255).
func newer(a, b byte) bool {
	switch {
	case a == b:
		return false
	case a == 0 && b == 0xff:
		return true
	case a == 0xff && b == 0:
		return false
	default:
		return a > b
	}
}

// UBootEnv is a U-Boot environment with one or two copies.
type UBootEnv struct {
	Copies []UBootCopy
	// LockPath is flocked around every write; by default the lock file of
	// libubootenv's fw_setenv, so the two never write at once.
	LockPath string
	// Create lets Write start from an empty environment when no copy is
	// valid. Off by default: U-Boot would then boot with an environment
	// lacking its defaults (bootcmd, ...).
	Create bool
}

// DefaultUBootLock is libubootenv's lock file.
const DefaultUBootLock = "/var/lock/fw_printenv.lock"

// OpenUBootEnv reads fw_env.config at path.
func OpenUBootEnv(configPath string) (*UBootEnv, error) {
	f, err := os.Open(configPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	copies, err := ParseFwEnvConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", configPath, err)
	}
	lock := DefaultUBootLock
	if _, err := os.Stat("/var/lock"); err != nil {
		lock = ""
	}
	return &UBootEnv{Copies: copies, LockPath: lock}, nil
}

func (u *UBootEnv) redundant() bool { return len(u.Copies) == 2 }

func readCopy(c UBootCopy) ([]byte, error) {
	if isMTD(c.Device) {
		fl, err := openFlash(c.Device, false)
		if err != nil {
			return nil, err
		}
		defer fl.Close()
		return readMTD(fl, c)
	}
	f, err := os.Open(c.Device)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	off, err := c.at(f)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, c.Size)
	if _, err := f.ReadAt(buf, off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: short environment: %w", c.Device, ErrNoEnv)
		}
		return nil, err
	}
	return buf, nil
}

// at resolves the copy's offset in the open device: a negative offset
// counts back from the end (seeking to the end gives a block device's
// size as well as a file's).
func (c UBootCopy) at(f *os.File) (int64, error) {
	if c.Offset >= 0 {
		return c.Offset, nil
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("%s: size for offset %d: %w", c.Device, c.Offset, err)
	}
	if end+c.Offset < 0 {
		return 0, fmt.Errorf("%s: offset %d before the start of its %d bytes: %w", c.Device, c.Offset, end, ErrFormat)
	}
	return end + c.Offset, nil
}

// load returns the current environment, the index of the current copy and
// its flags.
func (u *UBootEnv) load() (env map[string]string, current int, flags byte, err error) {
	boolean, err := u.booleanFlags()
	if err != nil {
		return nil, -1, 0, err
	}
	return u.loadScheme(boolean)
}

// loadScheme is load with the redundancy flag scheme already known
// (boolean on NOR flash, see booleanFlags).
func (u *UBootEnv) loadScheme(boolean bool) (env map[string]string, current int, flags byte, err error) {
	type result struct {
		env   map[string]string
		flags byte
		err   error
	}
	res := make([]result, len(u.Copies))
	for i, c := range u.Copies {
		raw, err := readCopy(c)
		if err != nil {
			res[i].err = err
			continue
		}
		res[i].env, res[i].flags, res[i].err = ParseUBootEnv(raw, u.redundant())
	}
	if !u.redundant() {
		if res[0].err != nil {
			return nil, 0, 0, fmt.Errorf("%s: %w", u.Copies[0].Device, res[0].err)
		}
		return res[0].env, 0, 0, nil
	}
	ok0, ok1 := res[0].err == nil, res[1].err == nil
	switch {
	case ok0 && ok1:
		cur := 0
		if boolean {
			cur = currentBoolean(res[0].flags, res[1].flags)
		} else if newer(res[1].flags, res[0].flags) {
			cur = 1
		}
		return res[cur].env, cur, res[cur].flags, nil
	case ok0:
		return res[0].env, 0, res[0].flags, nil
	case ok1:
		return res[1].env, 1, res[1].flags, nil
	}
	return nil, -1, 0, fmt.Errorf("both copies invalid (%v; %v): %w", res[0].err, res[1].err, ErrNoEnv)
}

// Read implements Store.
func (u *UBootEnv) Read() (map[string]string, error) {
	env, _, _, err := u.load()
	return env, err
}

// Write implements Store. With two copies the non-current copy gets the
// new environment and flags+1, is fsynced and read back; the current copy
// is not touched, so a power cut leaves the old environment valid.
func (u *UBootEnv) Write(set map[string]string) error {
	for k := range set {
		if err := checkKey(k); err != nil {
			return err
		}
	}
	if u.LockPath != "" {
		unlock, err := lockFile(u.LockPath)
		if err != nil {
			return err
		}
		defer unlock()
	}
	boolean, err := u.booleanFlags()
	if err != nil {
		return err
	}
	env, current, flags, err := u.loadScheme(boolean)
	creating := false
	if err != nil {
		if !errors.Is(err, ErrNoEnv) || !u.Create {
			return err
		}
		env, current, flags, creating = map[string]string{}, 1, 0, true
	}
	if creating && u.redundant() {
		// No copy is valid: give the other copy a valid, older
		// environment first. libubootenv refuses a redundant pair when
		// one copy cannot be read at all (e.g. an empty file), so a
		// single write would leave fw_printenv without an environment.
		other := u.Copies[current]
		raw, err := EncodeUBootEnv(merge(env, set), int(other.Size), true, flags)
		if err != nil {
			return err
		}
		if err := writeCopy(other, raw); err != nil {
			return err
		}
	}
	target := 0
	if u.redundant() {
		target = 1 - current
		flags++
		if boolean {
			flags = 1
		}
	}
	c := u.Copies[target]
	raw, err := EncodeUBootEnv(merge(env, set), int(c.Size), u.redundant(), flags)
	if err != nil {
		return err
	}
	if err := writeCopy(c, raw); err != nil {
		return err
	}
	back, err := readCopy(c)
	if err != nil {
		return err
	}
	if !bytes.Equal(back, raw) {
		return fmt.Errorf("%s: read back differs from what was written: %w", c.Device, ErrFormat)
	}
	if boolean {
		// The new copy is complete: retire the old one. A power cut
		// before this leaves two active copies; libubootenv (and, as far
		// as we know, U-Boot) then take the first, possibly the old
		// environment: the write may be lost, the environment stays
		// valid.
		return retireMTD(u.Copies[current])
	}
	return nil
}

// retireMTD marks a redundant copy on NOR flash obsolete: its flags byte
// goes to 0, which NOR can program without an erase.
func retireMTD(c UBootCopy) error {
	fl, err := openFlash(c.Device, true)
	if err != nil {
		return err
	}
	defer fl.Close()
	offs, _, err := mtdBlocks(fl, c)
	if err != nil {
		return err
	}
	if err := fl.writeAt([]byte{0}, offs[0]+4); err != nil {
		return fmt.Errorf("%s: mark the old copy obsolete: %w", c.Device, err)
	}
	return nil
}

func writeCopy(c UBootCopy, raw []byte) error {
	if isMTD(c.Device) {
		fl, err := openFlash(c.Device, true)
		if err != nil {
			return err
		}
		if err := writeMTD(fl, c, raw); err != nil {
			fl.Close()
			return err
		}
		return fl.Close()
	}
	relock, err := unprotect(sysBlock, c.Device)
	if err != nil {
		return err
	}
	defer relock()
	f, err := os.OpenFile(c.Device, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	off, err := c.at(f)
	if err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteAt(raw, off); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sysBlock is where sysfs lists block devices (a variable for tests).
var sysBlock = "/sys/class/block"

// unprotect lifts the kernel's write protection of an eMMC boot partition
// (/dev/mmcblkNbootM, where boards often keep the U-Boot environment: it
// is read-only by default through force_ro) for one write, as
// libubootenv does, and returns what puts it back. Other devices are left
// alone.
func unprotect(sys, device string) (relock func(), err error) {
	name := strings.TrimPrefix(strings.TrimPrefix(device, "/dev/block/"), "/dev/")
	if name == device || !isEMMCBoot(name) {
		return func() {}, nil
	}
	ro := filepath.Join(sys, name, "force_ro")
	old, err := os.ReadFile(ro)
	if err != nil || strings.TrimSpace(string(old)) != "1" {
		return func() {}, nil // no such switch, or already writable
	}
	if err := os.WriteFile(ro, []byte("0"), 0o644); err != nil {
		return nil, fmt.Errorf("%s: lift write protection: %w", device, err)
	}
	return func() { _ = os.WriteFile(ro, []byte("1"), 0o644) }, nil
}

// isEMMCBoot matches mmcblk<digits>boot<digits>.
func isEMMCBoot(name string) bool {
	rest, ok := strings.CutPrefix(name, "mmcblk")
	if !ok {
		return false
	}
	n, b, ok := strings.Cut(rest, "boot")
	return ok && digits(n) && digits(b)
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
