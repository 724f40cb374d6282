package yoctolint

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/internal/testenv"
	"github.com/kantofw/kanto/tools/internal/bb"
)

// TestBootfilesRecipe runs kanto-bootfiles' do_compile as bitbake would for
// a GRUB and a U-Boot machine and reads what it produces with the firmware
// code: the grubenv, the redundant U-Boot environment (U-Boot's default
// environment plus the A/B variables) and the compiled boot script.
func TestBootfilesRecipe(t *testing.T) {
	root := repoRoot(t)
	r := recipe(t, "kanto-bootfiles")
	body := ""
	for _, fn := range r.Main.Funcs {
		if fn.Name == "do_compile" {
			body = fn.Body
		}
	}
	if body == "" {
		t.Fatal("kanto-bootfiles has no do_compile")
	}
	files := filepath.Join(root, bootFiles)
	// run executes do_compile for machine; deploy holds DEPLOY_DIR_IMAGE
	// files (name -> content) that the task reads.
	run := func(t *testing.T, machine, bootloader string, deploy map[string]string) string {
		t.Helper()
		tmp := t.TempDir()
		vars := maps.Clone(r.Vars)
		vars["MACHINE"] = machine
		vars["KANTO_BOOTLOADER"] = bootloader
		vars["UNPACKDIR"] = files
		vars["B"] = tmp
		vars["DEPLOY_DIR_IMAGE"] = tmp
		for name, content := range deploy {
			if err := os.WriteFile(filepath.Join(tmp, bb.Expand(name, vars)), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		script := "bbfatal() { echo \"FATAL: $*\" >&2; exit 1; }\n" + bb.Expand(body, vars)
		if strings.Contains(script, "${") {
			t.Fatalf("do_compile not fully expanded:\n%s", script)
		}
		out, err := exec.Command("sh", "-e", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("do_compile for %s: %v\n%s", machine, err, out)
		}
		return tmp
	}

	t.Run("qemux86-64", func(t *testing.T) {
		b := run(t, "qemux86-64", "grub", nil)
		data := readFile(t, filepath.Join(b, "kanto-grubenv"))
		if len(data) != bootenv.GrubBlockSize {
			t.Fatalf("grubenv is %d bytes, want %d", len(data), bootenv.GrubBlockSize)
		}
		got, err := bootenv.ParseGrubEnv(data)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, readEnvText(t, filepath.Join(files, "grubenv.txt"))); diff != "" {
			t.Errorf("grubenv (-got +want):\n%s", diff)
		}
		checkGrubEnv(t, got)
	})

	t.Run("qemuarm64", func(t *testing.T) {
		for _, tool := range []string{"mkimage", "mkenvimage"} {
			testenv.LookPath(t, tool)
		}
		// do_compile starts from U-Boot's deployed default environment.
		defaults := "bootcmd=run distro_bootcmd\nbootdelay=2\nfdt_addr=0x40000000\n"
		b := run(t, "qemuarm64", "uboot", map[string]string{"u-boot-initial-env-${MACHINE}": defaults})
		size := envSize(t, r.Get("KANTO_UBOOT_ENV_SIZE"))
		want := readEnvText(t, filepath.Join(files, "uboot-env.txt"))
		want["bootcmd"], want["bootdelay"], want["fdt_addr"] = "run distro_bootcmd", "2", "0x40000000"
		for _, name := range []string{"uboot.env", "uboot-redund.env"} {
			data := readFile(t, filepath.Join(b, name))
			if int64(len(data)) != size {
				t.Errorf("%s is %d bytes, want %d", name, len(data), size)
			}
			got, _, err := bootenv.ParseUBootEnv(data, true)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("%s (-got +want):\n%s", name, diff)
			}
		}
		if fi, err := os.Stat(filepath.Join(b, "boot.scr")); err != nil || fi.Size() == 0 {
			t.Errorf("boot.scr not produced: %v", err)
		}
	})
}
