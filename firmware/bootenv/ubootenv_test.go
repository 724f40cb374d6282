package bootenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/firmware/bootenv/libubootenv"
	"github.com/kantofw/kanto/internal/testenv"
)

const envSize = 0x2000

// newUBoot makes fw_env.config with one or two copies in files (the second
// at an offset inside its file, as on a real disk) and returns the store.
func newUBoot(t *testing.T, redundant bool) (*UBootEnv, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf("# test env\n%s 0x0 0x%x\n", filepath.Join(dir, "env0"), envSize)
	if redundant {
		cfg += fmt.Sprintf("%s 0x4000 0x%x 0x1000\n", filepath.Join(dir, "env1"), envSize)
	}
	for _, n := range []string{"env0", "env1"} {
		if err := os.WriteFile(filepath.Join(dir, n), make([]byte, 0x8000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "fw_env.config")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := OpenUBootEnv(path)
	if err != nil {
		t.Fatal(err)
	}
	u.LockPath = filepath.Join(dir, "lock")
	return u, path
}

func TestUBootRoundTripWithLibubootenv(t *testing.T) {
	testenv.LookPath(t, "fw_setenv") // skips early without libubootenv-tool
	for _, redundant := range []bool{false, true} {
		t.Run(fmt.Sprintf("redundant=%v", redundant), func(t *testing.T) {
			u, cfg := newUBoot(t, redundant)
			u.Create = true
			// We create and write; fw_printenv reads.
			if err := u.Write(map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0", "BOOT_TRIAL": "0", "bootcmd": "run kanto; reset"}); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0", "BOOT_TRIAL": "0", "bootcmd": "run kanto; reset"}
			if diff := cmp.Diff(want, libubootenv.Printenv(t, cfg)); diff != "" {
				t.Fatalf("fw_printenv after our write (-want +got):\n%s", diff)
			}
			// Several writes each way, so the redundant flags advance on both sides.
			for i := range 3 {
				libubootenv.Setenv(t, cfg, "BOOT_ORDER", "B A")
				libubootenv.Setenv(t, cfg, "BOOT_B_LEFT", fmt.Sprint(i))
				got, err := u.Read()
				if err != nil {
					t.Fatal(err)
				}
				want["BOOT_ORDER"], want["BOOT_B_LEFT"] = "B A", fmt.Sprint(i)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("read after fw_setenv (-want +got):\n%s", diff)
				}
				if err := u.Write(map[string]string{"BOOT_TRIAL": fmt.Sprint(i % 2), "bootcmd": ""}); err != nil {
					t.Fatal(err)
				}
				want["BOOT_TRIAL"] = fmt.Sprint(i % 2)
				delete(want, "bootcmd")
				if diff := cmp.Diff(want, libubootenv.Printenv(t, cfg)); diff != "" {
					t.Fatalf("fw_printenv (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestUBootPowerCut simulates the torn writes a power cut leaves behind:
// the copy being written is truncated or half written, or the current copy
// is corrupted. A valid, consistent environment must still be read.
func TestUBootPowerCut(t *testing.T) {
	old := map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0", "BOOT_TRIAL": "0"}
	next := map[string]string{"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3", "BOOT_TRIAL": "1"}
	for _, tc := range []struct {
		name string
		// damage is applied to the copy that the next write goes to (the
		// torn write), or to the current copy.
		damage func(t *testing.T, u *UBootEnv, current, target int)
		want   map[string]string
	}{
		{"torn write half zeros", func(t *testing.T, u *UBootEnv, _, target int) {
			raw, _ := EncodeUBootEnv(next, envSize, true, 200)
			copy(raw[envSize/2:], make([]byte, envSize/2))
			raw[envSize-1] = 1 // a stray byte so the zero tail is not the real padding
			if err := writeCopy(u.Copies[target], raw); err != nil {
				t.Fatal(err)
			}
		}, old},
		{"torn write truncated file", func(t *testing.T, u *UBootEnv, _, target int) {
			c := u.Copies[target]
			if err := os.Truncate(c.Device, c.Offset+100); err != nil {
				t.Fatal(err)
			}
		}, old},
		{"torn write only header", func(t *testing.T, u *UBootEnv, _, target int) {
			raw, _ := EncodeUBootEnv(next, envSize, true, 200)
			f, _ := os.OpenFile(u.Copies[target].Device, os.O_WRONLY, 0)
			f.WriteAt(raw[:5], u.Copies[target].Offset)
			f.Close()
		}, old},
		{"new copy written, old copy then corrupted", func(t *testing.T, u *UBootEnv, current, _ int) {
			if err := u.Write(next); err != nil {
				t.Fatal(err)
			}
			f, _ := os.OpenFile(u.Copies[current].Device, os.O_WRONLY, 0)
			f.WriteAt([]byte("XXXX"), u.Copies[current].Offset+40)
			f.Close()
		}, next},
		{"current copy corrupted", func(t *testing.T, u *UBootEnv, current, _ int) {
			if err := u.Write(next); err != nil {
				t.Fatal(err)
			}
			// next is now current, in the old target; break it.
			f, _ := os.OpenFile(u.Copies[1-current].Device, os.O_WRONLY, 0)
			f.WriteAt([]byte("XXXX"), u.Copies[1-current].Offset+40)
			f.Close()
		}, old},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, cfg := newUBoot(t, true)
			u.Create = true
			// Two writes so both copies are valid and the flags differ.
			if err := u.Write(map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "1"}); err != nil {
				t.Fatal(err)
			}
			if err := u.Write(old); err != nil {
				t.Fatal(err)
			}
			_, current, _, err := u.load()
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(t, u, current, 1-current)
			got, err := u.Read()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("read (-want +got):\n%s", diff)
			}
			// libubootenv agrees, except that it gives up on a short file
			// where we fall back to the other copy.
			if strings.Contains(tc.name, "truncated") {
				return
			}
			if diff := cmp.Diff(tc.want, libubootenv.Printenv(t, cfg)); diff != "" {
				t.Fatalf("fw_printenv (-want +got):\n%s", diff)
			}
			// And the next write repairs: both read back the same.
			if err := u.Write(map[string]string{"X": "1"}); err != nil && !strings.Contains(tc.name, "truncated") {
				t.Fatal(err)
			}
		})
	}
}

func TestUBootNoValidEnv(t *testing.T) {
	u, _ := newUBoot(t, true)
	if _, err := u.Read(); !errors.Is(err, ErrNoEnv) {
		t.Fatalf("read of blank copies: %v", err)
	}
	if err := u.Write(map[string]string{"A": "1"}); !errors.Is(err, ErrNoEnv) {
		t.Fatalf("write without Create: %v", err)
	}
}

func TestUBootFlagsWrap(t *testing.T) {
	for _, tc := range []struct {
		a, b byte
		want bool
	}{{1, 0, true}, {0, 1, false}, {0, 255, true}, {255, 0, false}, {7, 7, false}, {200, 100, true}} {
		if got := newer(tc.a, tc.b); got != tc.want {
			t.Errorf("newer(%d,%d)=%v", tc.a, tc.b, got)
		}
	}
}

func TestParseFwEnvConfig(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []UBootCopy
		err      error
	}{
		{"single", "/dev/mmcblk0 0x3f8000 0x4000\n", []UBootCopy{{"/dev/mmcblk0", 0x3f8000, 0x4000, 0, 0}}, nil},
		{"redundant", "# c\n/dev/a 0 16384 512 1\n/dev/b 0x4000 0x4000 512\n", []UBootCopy{{"/dev/a", 0, 0x4000, 512, 1}, {"/dev/b", 0x4000, 0x4000, 512, 0}}, nil},
		{"empty", "# nothing\n", nil, ErrFormat},
		{"three", "a 0 64\nb 0 64\nc 0 64\n", nil, ErrFormat},
		{"bad number", "a zero 64\n", nil, ErrFormat},
		{"sizes differ", "a 0 64\nb 0 128\n", nil, ErrFormat},
		{"negative offsets", "/dev/mmcblk0 -0x4000 0x2000\n/dev/mmcblk0 -8192 0x2000\n", []UBootCopy{{"/dev/mmcblk0", -0x4000, 0x2000, 0, 0}, {"/dev/mmcblk0", -0x2000, 0x2000, 0, 0}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFwEnvConfig(strings.NewReader(tc.in))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseUBootEnv(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "uboot-*.bin"))
	sort.Strings(files)
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, strings.Contains(name, "redundant"))
	}
	f.Fuzz(func(t *testing.T, data []byte, redundant bool) {
		env, flags, err := ParseUBootEnv(data, redundant)
		if err != nil {
			return
		}
		out, err := EncodeUBootEnv(env, len(data), redundant, flags)
		if err != nil {
			return
		}
		again, _, err := ParseUBootEnv(out, redundant)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if diff := cmp.Diff(env, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func FuzzParseFwEnvConfig(f *testing.F) {
	for _, s := range []string{"/dev/mmcblk0 0x3f8000 0x4000\n/dev/mmcblk0 0x3fc000 0x4000\n", "# x\n/dev/mtd1 0 0x10000 0x10000 1\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		copies, err := ParseFwEnvConfig(strings.NewReader(s))
		if err == nil && (len(copies) == 0 || len(copies) > 2) {
			t.Fatalf("%d copies without error", len(copies))
		}
	})
}

// TestUBootNegativeOffsets: copies addressed from the end of the device,
// on a real block device (a loop device; libubootenv resolves negative
// offsets for block devices only) and checked with fw_printenv/fw_setenv
// both ways; and on a file, where the end is the file's size.
func TestUBootNegativeOffsets(t *testing.T) {
	testenv.LookPath(t, "fw_setenv") // skips early without libubootenv-tool
	losetup := testenv.LookPath(t, "losetup")
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(losetup, "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device here: %v %s", err, out)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command(losetup, "-d", loop).Run() })

	cfg := filepath.Join(dir, "fw_env.config")
	conf := fmt.Sprintf("%[1]s -0x%[2]x 0x%[2]x\n%[1]s -0x%[3]x 0x%[2]x\n", loop, envSize, 2*envSize)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := OpenUBootEnv(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u.LockPath, u.Create = filepath.Join(dir, "lock"), true
	if err := u.Write(map[string]string{"BOOT_ORDER": "A B"}); err != nil {
		t.Fatal(err)
	}
	if got := libubootenv.Printenv(t, cfg); got["BOOT_ORDER"] != "A B" {
		t.Fatalf("fw_printenv after our write: %v", got)
	}
	libubootenv.Setenv(t, cfg, "BOOT_ORDER", "B A")
	if got, err := u.Read(); err != nil || got["BOOT_ORDER"] != "B A" {
		t.Fatalf("read after fw_setenv: %v, %v", got, err)
	}
	// Both copies sit in the last 16 KiB of the device, nothing before.
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if i := strings.Index(string(raw), "BOOT_ORDER"); i < len(raw)-2*envSize {
		t.Errorf("environment found at %d, want within the last %d bytes of %d", i, 2*envSize, len(raw))
	}

	// A file: the end is its size; an offset before its start is refused.
	file := filepath.Join(dir, "env.bin")
	if err := os.WriteFile(file, make([]byte, 3*envSize), 0o644); err != nil {
		t.Fatal(err)
	}
	fu := &UBootEnv{Copies: []UBootCopy{{Device: file, Offset: -envSize, Size: envSize}}, Create: true}
	if err := fu.Write(map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if got, err := fu.Read(); err != nil || got["k"] != "v" {
		t.Fatalf("file read: %v, %v", got, err)
	}
	if b, _ := os.ReadFile(file); !strings.Contains(string(b[2*envSize:]), "k=v") {
		t.Error("file copy not in its last envSize bytes")
	}
	far := &UBootEnv{Copies: []UBootCopy{{Device: file, Offset: -4 * envSize, Size: envSize}}}
	if _, err := far.Read(); !errors.Is(err, ErrFormat) {
		t.Errorf("offset before the start: %v, want ErrFormat", err)
	}
}

// TestEMMCBootWriteProtection: a copy on an eMMC boot partition is
// written with its force_ro switch lifted and put back afterwards; other
// devices and already writable partitions are left alone.
func TestEMMCBootWriteProtection(t *testing.T) {
	sys := t.TempDir()
	for _, tc := range []struct {
		device, name, ro string
		lifted           bool
	}{
		{"/dev/mmcblk0boot1", "mmcblk0boot1", "1", true},
		{"/dev/block/mmcblk2boot0", "mmcblk2boot0", "1\n", true},
		{"/dev/mmcblk0boot0", "mmcblk0boot0", "0", false},
		{"/dev/mmcblk0p1", "mmcblk0p1", "1", false},
		{"/dev/mmcblkXboot0", "mmcblkXboot0", "1", false},
		{"env.bin", "env.bin", "1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ro := filepath.Join(sys, tc.name, "force_ro")
			if err := os.MkdirAll(filepath.Dir(ro), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(ro, []byte(tc.ro), 0o644); err != nil {
				t.Fatal(err)
			}
			relock, err := unprotect(sys, tc.device)
			if err != nil {
				t.Fatal(err)
			}
			during, _ := os.ReadFile(ro)
			relock()
			after, _ := os.ReadFile(ro)
			if lifted := string(during) == "0" && tc.ro != "0"; lifted != tc.lifted {
				t.Errorf("during the write force_ro=%q, lifted=%v, want %v", during, lifted, tc.lifted)
			}
			if tc.lifted && strings.TrimSpace(string(after)) != "1" {
				t.Errorf("after the write force_ro=%q, want 1", after)
			}
			if !tc.lifted && string(after) != tc.ro {
				t.Errorf("force_ro changed to %q for a device that needs no lift", after)
			}
		})
	}
}
