package fwtool

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/firmware/bootenv/libubootenv"
	"github.com/kantofw/kanto/internal/testenv"
)

// TestFwEnvUBootWithLibubootenv drives `kanto fw env --uboot-config` and
// cross-checks every step with Debian's fw_printenv/fw_setenv
// (libubootenv-tool) on the same fw_env.config: one copy or two redundant
// ones, in files that are erased (zeros) or empty (zero length).
func TestFwEnvUBootWithLibubootenv(t *testing.T) {
	testenv.LookPath(t, "fw_printenv") // both skip early without libubootenv-tool
	testenv.LookPath(t, "fw_setenv")
	const envSize = 0x2000
	for _, tc := range []struct {
		name      string
		redundant bool
		fileSize  int
	}{
		{"single/erased", false, 0x8000},
		{"redundant/erased", true, 0x8000},
		{"single/empty file", false, 0},
		{"redundant/empty files", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := func(n string) string { return filepath.Join(dir, n) }
			conf := fmt.Sprintf("%s 0x0 0x%x\n", p("env0"), envSize)
			if tc.redundant {
				conf += fmt.Sprintf("%s 0x4000 0x%x 0x1000\n", p("env1"), envSize)
			}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(os.WriteFile(p("fw_env.config"), []byte(conf), 0o644))
			must(os.WriteFile(p("env0"), make([]byte, tc.fileSize), 0o644))
			must(os.WriteFile(p("env1"), make([]byte, tc.fileSize), 0o644))
			cfg := p("fw_env.config")
			fwEnv := func(args ...string) result {
				t.Helper()
				return run(t, FwMain, append([]string{"env", "--uboot-config", cfg}, args...)...)
			}
			files := func() []byte {
				a, _ := os.ReadFile(p("env0"))
				b, _ := os.ReadFile(p("env1"))
				return append(a, b...)
			}
			// Both tools agree with want: kanto prints KEY=VALUE lines
			// sorted by key, fw_printenv the same pairs.
			check := func(when string, want map[string]string) {
				t.Helper()
				if diff := cmp.Diff(want, libubootenv.Printenv(t, cfg)); diff != "" {
					t.Fatalf("%s: fw_printenv (-want +got):\n%s", when, diff)
				}
				var lines []string
				for k, v := range want {
					lines = append(lines, k+"="+v+"\n")
				}
				slices.Sort(lines)
				r := fwEnv()
				if r.code != 0 {
					t.Fatalf("%s: kanto fw env: %+v", when, r)
				}
				if diff := cmp.Diff(strings.Join(lines, ""), r.stdout); diff != "" {
					t.Fatalf("%s: kanto fw env output (-want +got):\n%s", when, diff)
				}
			}

			// No valid copy: reading fails, and so does writing without --create.
			before := files()
			if r := fwEnv(); r.code == 0 {
				t.Fatalf("read of an environment without a valid copy: %+v", r)
			}
			if r := fwEnv("BOOT_ORDER=A B"); r.code == 0 {
				t.Fatalf("write without --create over no valid copy: %+v", r)
			}
			if !bytes.Equal(files(), before) {
				t.Fatal("a refused write changed the environment files")
			}

			want := map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0", "BOOT_TRIAL": "0", "bootcmd": "run kanto; reset", "bootargs": "console=ttyS0 x=y"}
			if r := fwEnv("--create", "BOOT_ORDER=A B", "BOOT_A_LEFT=3", "BOOT_B_LEFT=0", "BOOT_TRIAL=0", "bootcmd=run kanto; reset", "bootargs=console=ttyS0 x=y"); r.code != 0 {
				t.Fatalf("--create: %+v", r)
			}
			check("after --create", want)
			// --create on a valid environment keeps what it holds.
			if r := fwEnv("BOOT_TRIAL=1", "--create"); r.code != 0 {
				t.Fatalf("--create over a valid environment: %+v", r)
			}
			want["BOOT_TRIAL"] = "1"
			check("after a second --create", want)

			// Writes alternate between the tools, so the redundant copies'
			// flags advance on both sides.
			for i := range 3 {
				libubootenv.Setenv(t, cfg, "BOOT_ORDER", "B A")
				libubootenv.Setenv(t, cfg, fmt.Sprintf("lib%d", i), "set by fw_setenv")
				want["BOOT_ORDER"], want[fmt.Sprintf("lib%d", i)] = "B A", "set by fw_setenv"
				check(fmt.Sprintf("round %d, after fw_setenv", i), want)

				// KEY= deletes; the others are set in one write.
				args := []string{fmt.Sprintf("BOOT_B_LEFT=%d", i), "BOOT_ORDER=A B"}
				if i == 1 {
					args = append(args, "bootcmd=")
					delete(want, "bootcmd")
				}
				if r := fwEnv(args...); r.code != 0 {
					t.Fatalf("round %d: kanto fw env %v: %+v", i, args, r)
				}
				want["BOOT_B_LEFT"], want["BOOT_ORDER"] = fmt.Sprint(i), "A B"
				check(fmt.Sprintf("round %d, after kanto fw env", i), want)
			}
			// fw_setenv NAME with no value deletes too; kanto sees it gone.
			libubootenv.Delete(t, cfg, "lib0")
			delete(want, "lib0")
			check("after fw_setenv deleted a key", want)

			if r := fwEnv("not a pair"); r.code != 2 {
				t.Fatalf("a positional argument that is not KEY=VALUE: %+v, want exit 2", r)
			}
		})
	}
}
