package bootenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/firmware/bootenv/libubootenv"
	"golang.org/x/sys/unix"
)

// memSetBadBlock is MEMSETBADBLOCK, _IOW('M', 12, __kernel_loff_t).
const memSetBadBlock = 0x40084d0c

// GuestMarker starts the line TestMTDInGuest prints with its result, for
// the VM test that runs it (images/vmtest).
const GuestMarker = "KANTO-MTD-GUEST"

// TestMTDInGuest runs inside a QEMU guest with the kernel's NAND simulator
// (nandsim, /dev/mtd0: 16 KiB erase blocks) and Debian's fw_printenv and
// fw_setenv: redundant copies written by us and by libubootenv are read
// by the other, also after a block of a copy has gone bad. It is started
// by images/vmtest (KANTO_MTD_GUEST=1) and skips elsewhere.
func TestMTDInGuest(t *testing.T) {
	if os.Getenv("KANTO_MTD_GUEST") != "1" {
		t.Skip("runs in the guest of images/vmtest's TestUBootEnvOnNAND")
	}
	defer func() {
		result := "pass"
		switch {
		case t.Failed():
			result = "fail"
		case t.Skipped():
			result = "skip"
		}
		fmt.Printf("%s result=%s\n", GuestMarker, result)
	}()
	const dev = "/dev/mtd0"
	fl, err := openFlash(dev, false)
	if err != nil {
		t.Fatal(err)
	}
	in := fl.info()
	fl.Close()
	if in.Type != mtdNAND || in.EraseSize != 0x4000 {
		t.Fatalf("%s: type %d erase %#x, want nandsim's NAND with 16 KiB blocks", dev, in.Type, in.EraseSize)
	}
	// libubootenv locks /var/lock/fw_printenv.lock.
	if err := os.MkdirAll("/var/lock", 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "fw_env.config")
	// Each copy: one block of environment, two blocks of room.
	conf := fmt.Sprintf("%[1]s 0x0 0x4000 0x4000 2\n%[1]s 0x8000 0x4000 0x4000 2\n", dev)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := OpenUBootEnv(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u.Create = true
	setenv := func(k, v string) { t.Helper(); libubootenv.Setenv(t, cfg, k, v) }
	printenv := func() map[string]string { t.Helper(); return libubootenv.Printenv(t, cfg) }
	read := func() map[string]string {
		t.Helper()
		env, err := u.Read()
		if err != nil {
			t.Fatal(err)
		}
		return env
	}

	want := map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3"}
	if err := u.Write(want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, printenv()); diff != "" {
		t.Fatalf("fw_printenv after our write (-want +got):\n%s", diff)
	}
	for i := range 3 {
		setenv("BOOT_ORDER", "B A")
		want["BOOT_ORDER"] = "B A"
		if diff := cmp.Diff(want, read()); diff != "" {
			t.Fatalf("our read after fw_setenv (-want +got):\n%s", diff)
		}
		want["N"] = fmt.Sprint(i)
		if err := u.Write(map[string]string{"N": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, printenv()); diff != "" {
			t.Fatalf("fw_printenv after our write %d (-want +got):\n%s", i, diff)
		}
	}

	// The first block of the copy the next write goes to turns out bad
	// (blocks go bad when erased or written, not while holding data):
	// both sides skip it to the copy's spare block.
	current := func() int {
		t.Helper()
		_, cur, _, err := u.load()
		if err != nil {
			t.Fatal(err)
		}
		return cur
	}
	t.Logf("%s: NAND, %d MiB, erase block %#x; 3 round trips with fw_setenv/fw_printenv done", dev, in.Size>>20, in.EraseSize)
	x := 1 - current()
	xOff := u.Copies[x].Offset
	markBad(t, dev, xOff)
	t.Logf("copy %d: block %#x marked bad", x, xOff)
	for i := range 2 {
		want["M"] = fmt.Sprint(i)
		if err := u.Write(map[string]string{"M": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, printenv()); diff != "" {
			t.Fatalf("fw_printenv with a bad block (-want +got):\n%s", diff)
		}
		setenv("L", fmt.Sprint(i))
		want["L"] = fmt.Sprint(i)
		if diff := cmp.Diff(want, read()); diff != "" {
			t.Fatalf("our read with a bad block (-want +got):\n%s", diff)
		}
	}
	// Its spare block bad too: the other copy, current, still holds the
	// environment, and writing to the lost copy fails cleanly.
	for current() == x {
		want["K"] = "x"
		if err := u.Write(map[string]string{"K": "x"}); err != nil {
			t.Fatal(err)
		}
	}
	markBad(t, dev, xOff+0x4000)
	t.Logf("copy %d: spare block %#x marked bad too", x, xOff+0x4000)
	if diff := cmp.Diff(want, read()); diff != "" {
		t.Fatalf("our read with copy %d lost (-want +got):\n%s", x, diff)
	}
	if err := u.Write(map[string]string{"J": "1"}); err == nil {
		t.Error("a write to a copy without a good block succeeded")
	}
	if diff := cmp.Diff(want, read()); diff != "" {
		t.Fatalf("our read after the failed write (-want +got):\n%s", diff)
	}
}

func markBad(t *testing.T, dev string, off int64) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o := off
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), memSetBadBlock, uintptr(unsafe.Pointer(&o))); errno != 0 {
		t.Fatalf("MEMSETBADBLOCK %#x: %v", off, errno)
	}
}
