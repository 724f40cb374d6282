package yoctolint

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kantofw/kanto/internal/testenv"
	"github.com/kantofw/kanto/tools/internal/bb"
)

var parseErrorsRE = regexp.MustCompile(`(\d+) parse errors?`)

// TestRootfsPostprocess runs kanto-image's ROOTFS_POSTPROCESS_COMMAND on a
// scratch root filesystem per machine: the fstab it writes passes
// `findmnt --verify`, mounts the boot and data partitions of the wic layout,
// and the mount points and the /boot/vmlinuz link the GRUB script boots
// exist.
func TestRootfsPostprocess(t *testing.T) {
	findmnt := testenv.LookPath(t, "findmnt")
	root := repoRoot(t)
	img := recipe(t, "kanto-image")
	if !strings.Contains(img.Get("ROOTFS_POSTPROCESS_COMMAND"), "kanto_rootfs_ab") {
		t.Fatal("ROOTFS_POSTPROCESS_COMMAND does not run kanto_rootfs_ab")
	}
	body := ""
	for _, fn := range img.Main.Funcs {
		if fn.Name == "kanto_rootfs_ab" {
			body = fn.Body
		}
	}
	for _, m := range Machines {
		t.Run(m, func(t *testing.T) {
			rootfs := t.TempDir()
			vars := maps.Clone(img.Vars)
			vars["IMAGE_ROOTFS"] = rootfs
			vars["KERNEL_IMAGETYPE"] = "bzImage"
			vars["KANTO_FSTAB"] = img.Matching("KANTO_FSTAB")[m]
			for _, d := range []string{"etc", "boot"} {
				if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			base := "/dev/root / auto defaults 1 1\nproc /proc proc defaults 0 0\n"
			if err := os.WriteFile(filepath.Join(rootfs, "etc/fstab"), []byte(base), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(rootfs, "boot/bzImage"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			script := bb.Expand(body, vars)
			if strings.Contains(script, "${") {
				t.Fatalf("kanto_rootfs_ab not fully expanded:\n%s", script)
			}
			if out, err := exec.Command("sh", "-e", "-c", script).CombinedOutput(); err != nil {
				t.Fatalf("kanto_rootfs_ab: %v\n%s", err, out)
			}
			fstab := filepath.Join(rootfs, "etc/fstab")
			if out, err := exec.Command(findmnt, "--verify", "--tab-file", fstab).CombinedOutput(); err != nil {
				// findmnt also reports sources missing on this host; only
				// parse errors matter here.
				m := parseErrorsRE.FindStringSubmatch(string(out))
				if m == nil || m[1] != "0" {
					t.Errorf("findmnt --verify: %v\n%s", err, out)
				}
			}
			wks := parseWks(t, filepath.Join(root, LayerDir, "files", "wic", "kanto-ab-"+m+".wks"))
			text := string(readFile(t, fstab))
			for _, p := range []wksPart{wks[0], wks[3]} {
				if !strings.Contains(text, " "+p.Mount+" ") {
					t.Errorf("fstab does not mount %s:\n%s", p.Mount, text)
				}
				if fi, err := os.Stat(filepath.Join(rootfs, p.Mount)); err != nil || !fi.IsDir() {
					t.Errorf("mount point %s missing: %v", p.Mount, err)
				}
			}
			if target, err := os.Readlink(filepath.Join(rootfs, "boot/vmlinuz")); err != nil || target != "bzImage" {
				t.Errorf("/boot/vmlinuz -> %q (%v), want bzImage", target, err)
			}
		})
	}
}
