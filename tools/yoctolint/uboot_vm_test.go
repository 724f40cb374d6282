package yoctolint

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kantofw/kanto/firmware/bootenv/bootenvtest"
	"github.com/kantofw/kanto/internal/testenv"
	"github.com/kantofw/kanto/tools/internal/layergen"
)

// Debian's u-boot-qemu build of qemu_arm64_defconfig.
const qemuUBoot = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"

// TestUBootBootsLayerScript boots real U-Boot (qemu_arm64) in QEMU on a disk
// laid out like kanto-ab-qemuarm64.wks (FAT boot partition with the layer's
// boot.scr, ext4 slots A and B with distinct /boot/Image files) and checks,
// for several environments, that U-Boot picks the slot the firmware's
// simulation of the scheme picks (firmware/bootenv/bootenvtest), counts
// attempts the same way, and loads the kernel of that slot.
func TestUBootBootsLayerScript(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU; run without -short")
	}
	qemu := testenv.LookPath(t, "qemu-system-aarch64")
	if _, err := os.Stat(qemuUBoot); err != nil {
		testenv.Missing(t, qemuUBoot+" missing (Debian package u-boot-qemu)")
	}
	for _, tool := range []string{"mkimage", "mkfs.vfat", "mcopy", "mkfs.ext4"} {
		testenv.LookPath(t, tool)
	}
	root := repoRoot(t)
	script := readFile(t, filepath.Join(root, layergen.UBootScript("qemuarm64")))
	kernelSize := map[string]int{"A": 1111, "B": 2222}
	for _, c := range []struct {
		name string
		env  map[string]string // set before the script runs; nil = fresh U-Boot env
	}{
		{"fresh", nil},
		{"initial-image-env", map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0", "BOOT_TRIAL": "0"}},
		{"B-armed", map[string]string{"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3", "BOOT_TRIAL": "1"}},
		{"B-trial-exhausted", map[string]string{"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0", "BOOT_TRIAL": "1"}},
		{"B-committed", map[string]string{"BOOT_ORDER": "B A", "BOOT_A_LEFT": "0", "BOOT_B_LEFT": "3", "BOOT_TRIAL": "0"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var prelude strings.Builder
			for _, k := range []string{"BOOT_ORDER", "BOOT_A_LEFT", "BOOT_B_LEFT", "BOOT_TRIAL"} {
				if v, ok := c.env[k]; ok {
					fmt.Fprintf(&prelude, "setenv %s %q\n", k, v)
				}
			}
			dir := t.TempDir()
			disk := buildUBootDisk(t, dir, prelude.String()+string(script), kernelSize)
			out := bootUBoot(t, qemu, disk)

			// What the firmware's model of the script does with the same
			// environment (the script's defaults for unset variables).
			env := map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0", "BOOT_TRIAL": "0"}
			maps.Copy(env, c.env)
			store := &memStore{env: env}
			want, err := bootenvtest.UBootBoot(store)
			if err != nil {
				t.Fatal(err)
			}
			wantLine := fmt.Sprintf("KANTO-UBOOT slot=%s BOOT_ORDER=%s A=%s B=%s TRIAL=%s",
				want, store.env["BOOT_ORDER"], store.env["BOOT_A_LEFT"], store.env["BOOT_B_LEFT"], store.env["BOOT_TRIAL"])
			if out.kanto != wantLine {
				t.Errorf("U-Boot printed\n  %q\nthe firmware scheme expects\n  %q", out.kanto, wantLine)
			}
			if out.loaded != kernelSize[want] {
				t.Errorf("U-Boot loaded a %d-byte kernel, want slot %s's (%d bytes)", out.loaded, want, kernelSize[want])
			}
		})
	}
}

// buildUBootDisk writes an MBR disk: FAT boot partition with boot.scr
// compiled from script, then ext4 slots A and B whose /boot/Image files
// have the given sizes.
func buildUBootDisk(t *testing.T, dir, script string, kernelSize map[string]int) string {
	t.Helper()
	run := func(name string, args ...string) {
		t.Helper()
		if b, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, b)
		}
	}
	cmd := filepath.Join(dir, "boot.cmd")
	if err := os.WriteFile(cmd, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	run("mkimage", "-A", "arm64", "-T", "script", "-C", "none", "-d", cmd, filepath.Join(dir, "boot.scr"))
	boot := filepath.Join(dir, "p1.img")
	run("mkfs.vfat", "-C", boot, "16384")
	run("mcopy", "-i", boot, filepath.Join(dir, "boot.scr"), "::/boot.scr")
	parts := []struct {
		path  string
		ptype byte
	}{{boot, 0x0c}}
	for _, s := range []string{"A", "B"} {
		tree := filepath.Join(dir, "root"+s)
		if err := os.MkdirAll(filepath.Join(tree, "boot"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, "boot/Image"), make([]byte, kernelSize[s]), 0o644); err != nil {
			t.Fatal(err)
		}
		img := filepath.Join(dir, "p"+s+".img")
		run("mkfs.ext4", "-q", "-d", tree, img, "8M")
		parts = append(parts, struct {
			path  string
			ptype byte
		}{img, 0x83})
	}
	disk := filepath.Join(dir, "disk.img")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mbr := make([]byte, 512)
	lba := int64(2048) // 1 MiB alignment, as the wks files use
	for i, p := range parts {
		data := readFile(t, p.path)
		if _, err := f.WriteAt(data, lba*512); err != nil {
			t.Fatal(err)
		}
		sectors := (int64(len(data)) + 511) / 512
		e := mbr[446+16*i : 446+16*(i+1)]
		if i == 0 {
			e[0] = 0x80
		}
		e[4] = p.ptype
		binary.LittleEndian.PutUint32(e[8:], uint32(lba))
		binary.LittleEndian.PutUint32(e[12:], uint32(sectors))
		lba += (sectors + 2047) / 2048 * 2048
	}
	mbr[510], mbr[511] = 0x55, 0xaa
	if _, err := f.WriteAt(mbr, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(lba * 512); err != nil {
		t.Fatal(err)
	}
	return disk
}

type ubootResult struct {
	kanto  string // the KANTO-UBOOT line
	loaded int    // bytes of the kernel load after it
}

var bytesReadRE = regexp.MustCompile(`^(\d+) bytes read`)

// bootUBoot runs U-Boot until the boot script has printed its decision and
// tried to load the kernel, then stops QEMU.
func bootUBoot(t *testing.T, qemu, disk string) ubootResult {
	t.Helper()
	// A guard against a hung guest only; nothing here measures time.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-M", "virt", "-cpu", "cortex-a57", "-m", "256", "-nographic",
		"-nic", "none", "-no-reboot", "-bios", qemuUBoot,
		"-drive", "if=none,file="+disk+",format=raw,id=d0", "-device", "virtio-blk-device,drive=d0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	var res ubootResult
	var log []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := strings.TrimSpace(strings.ReplaceAll(sc.Text(), "\r", ""))
		log = append(log, line)
		if strings.HasPrefix(line, "KANTO-UBOOT ") {
			res.kanto = line
			continue
		}
		if res.kanto == "" {
			continue
		}
		if m := bytesReadRE.FindStringSubmatch(line); m != nil {
			fmt.Sscan(m[1], &res.loaded)
			return res
		}
		if strings.Contains(line, "Failed to load") || strings.Contains(line, "not found") {
			t.Errorf("kernel load failed: %s", line)
			return res
		}
	}
	t.Fatalf("U-Boot never ran the boot script's decision and kernel load; console:\n%s", strings.Join(log, "\n"))
	return res
}
