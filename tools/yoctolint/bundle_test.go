package yoctolint

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kantofw/kanto/internal/testenv"
	"github.com/kantofw/kanto/tools/internal/bb"
)

// TestBundleRecipeSigns runs kanto-bundle's do_compile as bitbake would
// (variables expanded for qemux86-64, the host's kanto as kanto-native) on
// a small ext4 image, then checks the bundle with `kanto bundle verify`
// against the keyring kanto-boot-config installs on devices: the recipe's
// CLI usage, the development signing key and the device keyring fit
// together.
func TestBundleRecipeSigns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the kanto binary; run without -short")
	}
	root := repoRoot(t)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	build := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", filepath.Join(bin, "kanto"), "./services/cmd/kanto")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build kanto: %v\n%s", err, b)
	}
	mkfs := testenv.LookPath(t, "mkfs.ext4")

	const machine = "qemux86-64"
	r := recipe(t, "kanto-bundle")
	deploy := filepath.Join(tmp, "deploy")
	b := filepath.Join(tmp, "build")
	for _, d := range []string{deploy, b} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	vars := r.Vars
	vars["MACHINE"] = machine
	vars["DEPLOY_DIR_IMAGE"] = deploy
	vars["B"] = b
	vars["KANTO_BUNDLE_COMPATIBLE"] = r.Matching("KANTO_BUNDLE_COMPATIBLE")[machine]
	image := bb.Expand("${DEPLOY_DIR_IMAGE}/${KANTO_BUNDLE_IMAGE}-${MACHINE}.rootfs.ext4", vars)
	if out, err := exec.Command(mkfs, "-q", image, "4M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	body := ""
	for _, fn := range r.Main.Funcs {
		if fn.Name == "do_compile" {
			body = bb.Expand(fn.Body, vars)
		}
	}
	if body == "" || strings.Contains(body, "${") {
		t.Fatalf("do_compile of kanto-bundle not found or not fully expanded:\n%s", body)
	}
	sh := exec.Command("sh", "-e", "-c", body)
	sh.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("kanto-bundle do_compile: %v\n%s\n%s", err, body, out)
	}
	kfw := bb.Expand("${B}/${KANTO_BUNDLE_IMAGE}-${MACHINE}.kfw", vars)

	boot := recipe(t, "kanto-boot-config")
	keyring := boot.Get("KANTO_KEYRING")
	compatible := vars["KANTO_BUNDLE_COMPATIBLE"]
	verify := exec.Command(filepath.Join(bin, "kanto"), "bundle", "verify", "--keyring", keyring, "--compatible", compatible, kfw)
	if out, err := verify.CombinedOutput(); err != nil {
		t.Fatalf("kanto bundle verify --keyring %s --compatible %s: %v\n%s", keyring, compatible, err, out)
	}
	other := exec.Command(filepath.Join(bin, "kanto"), "bundle", "verify", "-q", "--keyring", keyring, "--compatible", "some-other-board", kfw)
	if err := other.Run(); err == nil {
		t.Error("the bundle verifies for a board it was not made for")
	}
}
