package pid1

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/mount/block"
	"golang.org/x/sys/unix"
)

// ErrNoDevice means a device named in the configuration or on the kernel
// command line did not appear in time.
var ErrNoDevice = errors.New("device not found")

type fsMount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

// mountBasics mounts /proc, /sys, /dev and friends where they are not
// mounted yet (stage 2 inherits /dev, /proc and /sys from stage 1).
func mountBasics(extra bool) error {
	ms := []fsMount{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	}
	if extra {
		ms = append(ms,
			fsMount{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=620,ptmxmode=000"},
			fsMount{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
			fsMount{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
			fsMount{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		)
	}
	var errs []error
	for _, m := range ms {
		if mounted(m.target) {
			continue
		}
		_ = os.MkdirAll(m.target, 0o755)
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("mount %s: %w", m.target, err))
		}
	}
	return errors.Join(errs...)
}

// mounted reports whether path is a mount point (its device differs from
// its parent's).
func mounted(path string) bool {
	var a, b unix.Stat_t
	if unix.Stat(path, &a) != nil || unix.Stat(filepath.Dir(path), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// resolveDevice turns "PARTLABEL=name", "/dev/vdaN" or "vdaN" into a device
// path, waiting for it to appear (partitions show up asynchronously after
// the disk driver loads).
func resolveDevice(ctx context.Context, spec string, wait time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		if p, ok := lookupDevice(spec); ok {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s: %w", spec, ErrNoDevice)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func lookupDevice(spec string) (string, bool) {
	if label, ok := strings.CutPrefix(spec, "PARTLABEL="); ok {
		devs, err := block.GetBlockDevices()
		if err != nil {
			return "", false
		}
		if m := devs.FilterPartLabel(label); len(m) > 0 {
			return m[0].DevicePath(), true
		}
		return "", false
	}
	if !strings.HasPrefix(spec, "/") {
		spec = "/dev/" + spec
	}
	if _, err := os.Stat(spec); err == nil {
		return spec, true
	}
	return "", false
}

// reapOrphans waits for zombie children that nobody else waits for:
// processes re-parented to PID 1 after their parent died. owned reports the
// pids whose exec.Cmd.Wait will reap them. It scans /proc every interval
// until ctx ends.
func reapOrphans(ctx context.Context, owned func(pid int) bool, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	self := os.Getpid()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			// pid (comm) state ppid ...; comm may hold spaces.
			s := string(b)
			i := strings.LastIndexByte(s, ')')
			if i < 0 {
				continue
			}
			f := strings.Fields(s[i+1:])
			if len(f) < 2 || f[0] != "Z" || f[1] != strconv.Itoa(self) || owned(pid) {
				continue
			}
			var ws unix.WaitStatus
			_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
	}
}
