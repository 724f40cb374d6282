package flash

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeHost builds a sysfs tree in a temp dir, laid out as Linux does, with
// disks sda (8:0; sda1 8:1, sda2 8:2), sdb (8:16; sdb1 8:17) and nvme0n1
// (259:0; nvme0n1p1 259:1), and / on rootDev.
func fakeHost(t *testing.T, rootDev uint64, mountinfo string) host {
	t.Helper()
	sys := t.TempDir()
	const (
		ata  = "devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block"
		usb  = "devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block"
		nvme = "devices/pci0000:00/0000:00:04.0/nvme/nvme0"
	)
	for _, d := range []struct {
		dev, dir string
		part     bool
	}{
		{"8:0", ata + "/sda", false},
		{"8:1", ata + "/sda/sda1", true},
		{"8:2", ata + "/sda/sda2", true},
		{"8:16", usb + "/sdb", false},
		{"8:17", usb + "/sdb/sdb1", true},
		{"259:0", nvme + "/nvme0n1", false},
		{"259:1", nvme + "/nvme0n1/nvme0n1p1", true},
	} {
		dir := filepath.Join(sys, d.dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "dev"), []byte(d.dev+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if d.part {
			if err := os.WriteFile(filepath.Join(dir, "partition"), []byte("1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		link := filepath.Join(sys, "dev", "block", d.dev)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..", "..", d.dir), link); err != nil {
			t.Fatal(err)
		}
	}
	return host{
		sys:       sys,
		rootDev:   func() (uint64, error) { return rootDev, nil },
		mountinfo: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(mountinfo)), nil },
		devOf: func(path string) (uint64, error) {
			n, ok := fakeNodes[path]
			if !ok {
				return 0, os.ErrNotExist
			}
			return n, nil
		},
	}
}

// fakeNodes are the device nodes of the fake host's /dev.
var fakeNodes = map[string]uint64{
	"/dev/sda1": unix.Mkdev(8, 1), "/dev/sda2": unix.Mkdev(8, 2),
	"/dev/sdb": unix.Mkdev(8, 16), "/dev/sdb1": unix.Mkdev(8, 17),
}

// hold makes the virtual device mapper device dm-<n> (named name, or
// unnamed as md) a holder of the block device at dir (relative to sys), as
// LVM, dm-crypt or md do, with the slaves link back.
func hold(t *testing.T, h host, dir, holder, name string) {
	t.Helper()
	hd := filepath.Join(h.sys, "devices/virtual/block", holder)
	if name != "" {
		if err := os.MkdirAll(filepath.Join(hd, "dm"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(hd, "dm", "name"), []byte(name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(hd, 0o755); err != nil {
		t.Fatal(err)
	}
	holders := filepath.Join(h.sys, dir, "holders")
	if err := os.MkdirAll(holders, 0o755); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(holders, hd)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(holders, holder)); err != nil {
		t.Fatal(err)
	}
}

// TestHeldTargets: a disk whose partition (or itself) carries LVM,
// dm-crypt or md is refused even though nothing of it is mounted by its
// own number; other disks' holders do not matter.
func TestHeldTargets(t *testing.T) {
	const usb = "devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block"
	const ata = "devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block"
	for _, tc := range []struct {
		name, dir, holder, dmName string
		dev                       uint64
		wantMsg                   string // "" = accepted
	}{
		{"LVM on a partition", usb + "/sdb/sdb1", "dm-0", "vg-data", unix.Mkdev(8, 16), "/dev/target: sdb1 is in use by dm-0 (vg-data)"},
		{"dm-crypt on the whole disk", usb + "/sdb", "dm-1", "luks-1234", unix.Mkdev(8, 16), "/dev/target: sdb is in use by dm-1 (luks-1234)"},
		{"md on a partition, partition given", usb + "/sdb/sdb1", "md0", "", unix.Mkdev(8, 17), "/dev/target: sdb1 is in use by md0"},
		{"holder on another disk", ata + "/sda/sda1", "dm-0", "vg-root", unix.Mkdev(8, 16), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fakeHost(t, unix.Mkdev(0, 30), `1 0 0:30 / / rw - overlay overlay rw`+"\n")
			hold(t, h, tc.dir, tc.holder, tc.dmName)
			err := h.checkDevice("/dev/target", tc.dev)
			if tc.wantMsg == "" {
				if err != nil {
					t.Errorf("checkDevice() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrTargetBusy) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("checkDevice() = %v, want ErrTargetBusy with %q", err, tc.wantMsg)
			}
		})
	}
}

// TestBtrfsMountBySource: btrfs shows an anonymous 0:N device number in
// mountinfo; the mount source names the disk.
func TestBtrfsMountBySource(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		busy       bool
	}{
		{"btrfs on the target", `40 1 0:45 / /srv rw - btrfs /dev/sdb1 rw,space_cache=v2`, true},
		{"btrfs elsewhere", `40 1 0:45 / /srv rw - btrfs /dev/sda1 rw,space_cache=v2`, false},
		{"source not a device", `40 1 0:46 / /run rw - tmpfs /dev/shm-like rw`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fakeHost(t, unix.Mkdev(0, 30), `1 0 0:30 / / rw - overlay overlay rw`+"\n"+tc.line+"\n")
			err := h.checkDevice("/dev/target", unix.Mkdev(8, 16))
			if busy := errors.Is(err, ErrTargetBusy); busy != tc.busy || (!busy && err != nil) {
				t.Errorf("checkDevice() = %v, want busy=%v", err, tc.busy)
			}
			if tc.busy && !strings.Contains(err.Error(), "mounted on /srv") {
				t.Errorf("checkDevice() = %v, want the mount point named", err)
			}
		})
	}
}

func TestDiskOf(t *testing.T) {
	h := fakeHost(t, 0, "")
	sda := h.diskOf(8, 0)
	if !strings.HasSuffix(sda, "/block/sda") {
		t.Errorf("diskOf(8:0) = %s, want the sda directory", sda)
	}
	for _, tc := range []struct {
		major, minor uint32
		same         bool
	}{
		{8, 1, true}, {8, 2, true}, {8, 16, false}, {8, 17, false}, {259, 1, false}, {0, 21, false},
	} {
		if got := h.diskOf(tc.major, tc.minor) == sda; got != tc.same {
			t.Errorf("diskOf(%d:%d) == diskOf(8:0) is %v, want %v", tc.major, tc.minor, got, tc.same)
		}
	}
	if a, b := h.diskOf(259, 1), h.diskOf(259, 0); a != b {
		t.Errorf("diskOf(259:1) = %s, diskOf(259:0) = %s; want the same disk", a, b)
	}
}

func TestRefusesSystemDisk(t *testing.T) {
	// / is on sda2: the whole sda is refused, whatever mountinfo says.
	for _, dev := range []uint64{unix.Mkdev(8, 0), unix.Mkdev(8, 2)} {
		h := fakeHost(t, unix.Mkdev(8, 2), lineProc+"\n")
		err := h.checkDevice("/dev/sda", dev)
		if !errors.Is(err, ErrTargetBusy) || !strings.Contains(err.Error(), "running system") {
			t.Errorf("checkDevice(%d:%d) = %v, want ErrTargetBusy for the running system", unix.Major(dev), unix.Minor(dev), err)
		}
	}
}

func TestCheckDevice(t *testing.T) {
	sda2, overlay := unix.Mkdev(8, 2), unix.Mkdev(0, 120)
	for _, tc := range []struct {
		name      string
		root, dev uint64
		lines     []string
		want      error  // nil, ErrTargetBusy or errMountinfo
		wantMsg   string // in the error
	}{
		{"other disk idle", sda2, unix.Mkdev(8, 16), []string{lineProc, lineRoot, lineTmpfs}, nil, ""},
		{"partition mounted", sda2, unix.Mkdev(8, 16), []string{lineRoot, linePartition}, ErrTargetBusy, "mounted on /media/usb:"},
		{"whole disk mounted", sda2, unix.Mkdev(8, 16), []string{lineRoot, lineWholeDisk}, ErrTargetBusy, "mounted on /mnt/raw:"},
		{"bind mount", sda2, unix.Mkdev(8, 16), []string{lineRoot, lineBind}, ErrTargetBusy, "mounted on /srv/photos:"},
		{"escaped mount point", sda2, unix.Mkdev(8, 16), []string{lineRoot, lineSpaces}, ErrTargetBusy, "mounted on /media/me/USB STICK\tx\\y:"},
		{"partition given", sda2, unix.Mkdev(8, 17), []string{lineRoot, linePartition}, ErrTargetBusy, "mounted on /media/usb:"},
		{"nvme partition mounted", sda2, unix.Mkdev(259, 0), []string{lineRoot, `30 27 259:1 / /boot/efi rw - vfat /dev/nvme0n1p1 rw`}, ErrTargetBusy, "mounted on /boot/efi:"},
		{"root on an anonymous device", overlay, unix.Mkdev(8, 0), []string{`1 0 0:120 / / rw - overlay overlay rw`, lineProc}, nil, ""},
		{"root on an anonymous device, disk mounted", overlay, unix.Mkdev(8, 0), []string{`1 0 0:120 / / rw - overlay overlay rw`, `5 1 8:1 / /data rw - ext4 /dev/sda1 rw`}, ErrTargetBusy, "mounted on /data:"},
		{"unreadable mountinfo", sda2, unix.Mkdev(8, 16), []string{lineRoot, `99 27 8:17 / /media/usb`}, errMountinfo, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := fakeHost(t, tc.root, strings.Join(tc.lines, "\n")+"\n")
			err := h.checkDevice("/dev/target", tc.dev)
			if tc.want == nil {
				if err != nil {
					t.Errorf("checkDevice() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("checkDevice() = %v, want %v with %q", err, tc.want, tc.wantMsg)
			}
		})
	}
}

func TestCheckTargetFiles(t *testing.T) {
	// Regular files and new paths pass without a look at sysfs or
	// mountinfo.
	h := host{
		sys:       "/nonexistent-sysfs",
		rootDev:   func() (uint64, error) { t.Error("rootDev read for a file"); return 0, nil },
		mountinfo: func() (io.ReadCloser, error) { t.Error("mountinfo read for a file"); return nil, os.ErrNotExist },
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, filepath.Join(dir, "new.img")} {
		if err := h.check(p); err != nil {
			t.Errorf("check(%s) = %v, want nil", p, err)
		}
	}
}
