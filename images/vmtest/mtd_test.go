package vmtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/kantofw/kanto/images/builder"
	"github.com/kantofw/kanto/images/qemu"
	"github.com/kantofw/kanto/init/initcfg"
	"github.com/kantofw/kanto/internal/testenv"
)

// TestUBootEnvOnNAND runs firmware/bootenv's TestMTDInGuest inside the
// guest, on the kernel's NAND simulator, next to Debian's fw_printenv and
// fw_setenv (copied into the image with the libraries they link): the
// real MTD ioctls (erase, bad blocks) that no host here offers.
func TestUBootEnvOnNAND(t *testing.T) {
	Require(t)
	t.Parallel()
	printenv := testenv.LookPath(t, "fw_printenv")
	setenv := testenv.LookPath(t, "fw_setenv")
	dir := t.TempDir()
	guest := filepath.Join(dir, "bootenv.test")
	var err error
	build := exec.Command("go", "test", "-c", "-o", guest, "./firmware/bootenv")
	if build.Dir, err = builder.RepoDir(); err != nil {
		t.Fatal(err)
	}
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the guest test: %v\n%s", err, out)
	}
	files := map[string]string{"/usr/bin/bootenv.test": guest, "/usr/bin/fw_printenv": printenv, "/usr/bin/fw_setenv": setenv}
	// glibc and its loader are in the image already (Mosquitto links them).
	for _, lib := range []string{"libubootenv.so.0", "libz.so.1"} {
		files["/usr/lib/x86_64-linux-gnu/"+lib] = filepath.Join("/lib/x86_64-linux-gnu", lib)
	}
	img := images.Build(t, "nand", builder.Config{
		Version: "1.0.0", Minimal: true, NoBundle: true,
		Modules: append(append([]string(nil), builder.DefaultModules...), "nandsim"),
		Files:   files,
		Services: []initcfg.Service{{Name: "mtd-guest-test", After: []string{"mosquitto"},
			Exec: []string{"/usr/bin/bootenv.test", "-test.run=^TestMTDInGuest$", "-test.v"},
			Env:  []string{"KANTO_MTD_GUEST=1", "PATH=/usr/bin:/usr/sbin:/bin", "LD_LIBRARY_PATH=/lib/x86_64-linux-gnu"}}},
	})
	vm := Boot(t, img.Disk, qemu.Options{NoNet: true})
	l, err := vm.WaitFor(context.Background(), regexp.MustCompile(`KANTO-MTD-GUEST result=\w+`), BootTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`result=(\w+)`).FindStringSubmatch(l.Text); m[1] != "pass" {
		t.Fatalf("the guest test says %s (console below)", m[1])
	}
	for _, l := range vm.Lines() {
		if regexp.MustCompile(`\[mtd-guest-test\]`).MatchString(l.Text) {
			t.Logf("%6.2fs %s", l.At.Seconds(), l.Text)
		}
	}
}
