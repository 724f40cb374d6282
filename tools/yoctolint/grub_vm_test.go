package yoctolint

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/firmware/bootenv/bootenvtest"
	"github.com/kantofw/kanto/internal/testenv"
	"github.com/kantofw/kanto/tools/internal/layergen"
)

const (
	ovmf          = "/usr/share/ovmf/OVMF.fd"
	grubModuleDir = "/usr/lib/grub/x86_64-efi"
)

// oeGrubEmbeddedCfg is openembedded-core's grub-efi "cfg", built into the
// EFI image: find the ESP, take the config from /EFI/BOOT.
const oeGrubEmbeddedCfg = "search.file /EFI/BOOT/grub.cfg root\nset prefix=($root)/EFI/BOOT\n"

// TestGrubBootsLayerConfig builds a GRUB EFI image the way oe-core's
// grub-efi does (grub-mkimage, prefix /EFI/BOOT, GRUB_BUILDIN plus the
// layer's bbappend), lays out a GPT disk like kanto-ab-qemux86-64.wks (ESP
// with kanto-grub.cfg and the grubenv, ext4 slots with /boot/vmlinuz as
// kanto-image links it) and boots it with OVMF in QEMU. For several
// environments, GRUB must pick the slot the firmware's scheme model picks,
// write the grubenv the same way, and start the kernel with that slot's
// root= and kanto.slot=.
func TestGrubBootsLayerConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU; run without -short")
	}
	qemu := testenv.LookPath(t, "qemu-system-x86_64")
	for _, f := range []string{ovmf, filepath.Join(grubModuleDir, "regexp.mod")} {
		if _, err := os.Stat(f); err != nil {
			testenv.Missing(t, f+" missing (Debian packages ovmf, grub-efi-amd64-bin)")
		}
	}
	for _, tool := range []string{"grub-mkimage", "mkfs.vfat", "mmd", "mcopy", "mkfs.ext4", "sgdisk"} {
		testenv.LookPath(t, tool)
	}
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(kernels) == 0 {
		testenv.Missing(t, "no kernel in /boot (Debian package linux-image-amd64)")
	}
	root := repoRoot(t)
	dir := t.TempDir()
	efi := buildGrubEFI(t, root, dir)
	slots := buildSlot(t, dir, kernels[0])
	initial := readEnvText(t, filepath.Join(root, bootFiles, "grubenv.txt"))

	for _, c := range []struct {
		name string
		env  map[string]string
	}{
		{"initial-image-env", initial},
		{"B-armed", map[string]string{"ORDER": "B A", "A_OK": "1", "A_TRY": "0", "B_OK": "1", "B_TRY": "1"}},
		{"B-trial-used", map[string]string{"ORDER": "B A", "A_OK": "1", "A_TRY": "0", "B_OK": "1", "B_TRY": "2"}},
		{"B-committed", map[string]string{"ORDER": "B A", "A_OK": "0", "A_TRY": "0", "B_OK": "1", "B_TRY": "0"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			block, err := bootenv.EncodeGrubEnv(c.env, bootenv.GrubBlockSize)
			if err != nil {
				t.Fatal(err)
			}
			disk := buildGrubDisk(t, root, t.TempDir(), efi, block, slots)
			kanto, cmdline := bootGrub(t, qemu, disk)

			store := &memStore{env: maps.Clone(c.env)}
			want, err := bootenvtest.GrubBoot(store)
			if err != nil {
				t.Fatal(err)
			}
			e := store.env
			wantLine := fmt.Sprintf("KANTO-GRUB slot=%s ORDER=%s A_OK=%s A_TRY=%s B_OK=%s B_TRY=%s",
				want, e["ORDER"], e["A_OK"], e["A_TRY"], e["B_OK"], e["B_TRY"])
			if kanto != wantLine {
				t.Errorf("GRUB printed\n  %q\nthe firmware scheme expects\n  %q", kanto, wantLine)
			}
			for _, arg := range []string{"kanto.slot=" + want, "root=PARTLABEL=rootfs" + want} {
				if !contains(strings.Fields(cmdline), arg) {
					t.Errorf("kernel command line %q lacks %s", cmdline, arg)
				}
			}
			got, err := bootenv.ParseGrubEnv(readESPFile(t, disk, "::/EFI/BOOT/grubenv"))
			if err != nil {
				t.Fatalf("grubenv after boot: %v", err)
			}
			if diff := cmp.Diff(got, store.env); diff != "" {
				t.Errorf("grubenv after boot (-GRUB +firmware model):\n%s", diff)
			}
		})
	}
}

// buildGrubEFI runs grub-mkimage as oe-core's grub-efi do_mkimage does.
func buildGrubEFI(t *testing.T, root, dir string) string {
	t.Helper()
	app, err := parseFile(filepath.Join(root, LayerDir, "recipes-bsp/grub/grub-efi_%.bbappend"))
	if err != nil {
		t.Fatal(err)
	}
	modules := strings.Fields(grubDefaultBuiltin)
	for _, a := range app.Assignments {
		if strings.HasPrefix(a.Name, "GRUB_BUILDIN:append") {
			modules = append(modules, strings.Fields(a.Value)...)
		}
	}
	cfg := filepath.Join(dir, "cfg")
	if err := os.WriteFile(cfg, []byte(oeGrubEmbeddedCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "bootx64.efi")
	args := append([]string{"-c", cfg, "-p", "/EFI/BOOT", "-d", grubModuleDir, "-O", "x86_64-efi", "-o", out}, modules...)
	if b, err := exec.Command("grub-mkimage", args...).CombinedOutput(); err != nil {
		t.Fatalf("grub-mkimage: %v\n%s", err, b)
	}
	return out
}

// buildSlot makes an ext4 root filesystem with the kernel at /boot/bzImage
// and the /boot/vmlinuz link kanto-image adds.
func buildSlot(t *testing.T, dir, kernel string) string {
	t.Helper()
	tree := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(tree, "boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "boot/bzImage"), readFile(t, kernel), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("bzImage", filepath.Join(tree, "boot/vmlinuz")); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "rootfs.ext4")
	if b, err := exec.Command("mkfs.ext4", "-q", "-d", tree, img, "24M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, b)
	}
	return img
}

// GPT layout of the test disk (sectors), in the order of the wks file.
var grubDiskParts = []struct {
	name        string
	start, size int64
	typ         string
}{
	{"esp", 2048, 32 << 11, "ef00"},
	{"rootfsA", 2048 + 32<<11, 24 << 11, "8300"},
	{"rootfsB", 2048 + 56<<11, 24 << 11, "8300"},
}

func buildGrubDisk(t *testing.T, root, dir, efi string, grubenv []byte, slot string) string {
	t.Helper()
	run := func(name string, args ...string) {
		t.Helper()
		if b, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, b)
		}
	}
	esp := filepath.Join(dir, "esp.img")
	run("mkfs.vfat", "-C", esp, strconv.FormatInt(grubDiskParts[0].size/2, 10))
	run("mmd", "-i", esp, "::/EFI", "::/EFI/BOOT")
	env := filepath.Join(dir, "grubenv")
	if err := os.WriteFile(env, grubenv, 0o644); err != nil {
		t.Fatal(err)
	}
	run("mcopy", "-i", esp, efi, "::/EFI/BOOT/BOOTX64.EFI")
	run("mcopy", "-i", esp, filepath.Join(root, layergen.GrubCfg), "::/EFI/BOOT/grub.cfg")
	run("mcopy", "-i", esp, env, "::/EFI/BOOT/grubenv")

	disk := filepath.Join(dir, "disk.img")
	last := grubDiskParts[len(grubDiskParts)-1]
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate((last.start + last.size + 2048) * 512); err != nil {
		t.Fatal(err)
	}
	args := []string{"-o"}
	for i, p := range grubDiskParts {
		n := strconv.Itoa(i + 1)
		args = append(args, "-n", fmt.Sprintf("%s:%d:%d", n, p.start, p.start+p.size-1), "-t", n+":"+p.typ, "-c", n+":"+p.name)
	}
	run("sgdisk", append(args, disk)...)
	for i, img := range []string{esp, slot, slot} {
		if _, err := f.WriteAt(readFile(t, img), grubDiskParts[i].start*512); err != nil {
			t.Fatal(err)
		}
	}
	return disk
}

// readESPFile copies a file out of the ESP of disk.
func readESPFile(t *testing.T, disk, path string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	img := fmt.Sprintf("%s@@%d", disk, grubDiskParts[0].start*512)
	if b, err := exec.Command("mcopy", "-i", img, path, out).CombinedOutput(); err != nil {
		t.Fatalf("mcopy %s: %v\n%s", path, err, b)
	}
	return readFile(t, out)
}

// bootGrub boots disk until the kernel has printed its command line and
// returns GRUB's KANTO-GRUB line and that command line.
func bootGrub(t *testing.T, qemu, disk string) (kanto, cmdline string) {
	t.Helper()
	// A guard against a hung guest only; nothing here measures time.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-m", "512", "-nographic", "-nic", "none", "-no-reboot",
		"-bios", ovmf, "-drive", "if=virtio,format=raw,file="+disk)
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
	var log []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := strings.TrimSpace(strings.ReplaceAll(sc.Text(), "\r", ""))
		log = append(log, line)
		if strings.HasPrefix(line, "error: ") {
			// GRUB would stop at its prompt: fail now rather than wait.
			t.Fatalf("GRUB: %s; console:\n%s", line, strings.Join(log, "\n"))
		}
		if i := strings.Index(line, "KANTO-GRUB "); i >= 0 {
			kanto = line[i:]
		}
		if i := strings.Index(line, "Command line: "); i >= 0 && kanto != "" {
			return kanto, line[i+len("Command line: "):]
		}
	}
	t.Fatalf("no KANTO-GRUB line and kernel command line; console:\n%s", strings.Join(log, "\n"))
	return "", ""
}
