package yoctolint

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCrossBuildAsRecipe builds the kanto binary for the layer's
// architectures the way kanto.bb does (go.bbclass flags as the recipe
// adjusts them: CGO off, no PIE, -trimpath, -buildvcs=false, the version
// through -ldflags -X, no module downloads) and checks the result: a static
// ELF for the architecture, and on the host architecture `kanto version`
// prints the injected version.
func TestCrossBuildAsRecipe(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds take a while; run without -short")
	}
	root := repoRoot(t)
	r := recipe(t, "kanto")
	const version = "9.8.7-yoctolint"
	r.Vars["KANTO_VERSION"] = version
	ldflags := r.Get("GO_EXTRA_LDFLAGS")
	if !strings.Contains(ldflags, "-X main.version="+version) {
		t.Fatalf("GO_EXTRA_LDFLAGS = %q: the version is not injected with -X main.version", ldflags)
	}
	if r.Vars["CGO_ENABLED"] != "0" {
		t.Fatalf("CGO_ENABLED = %q, want 0", r.Vars["CGO_ENABLED"])
	}
	if !strings.Contains(r.Raw("GOBUILDFLAGS:remove"), "-buildmode=pie") {
		t.Fatal("the recipe keeps go.bbclass's -buildmode=pie, which needs cgo on 32-bit arm")
	}
	pkg, ok := strings.CutPrefix(r.Get("GO_INSTALL"), r.Get("GO_IMPORT")+"/")
	if !ok {
		t.Fatalf("GO_INSTALL %q is not inside GO_IMPORT %q", r.Get("GO_INSTALL"), r.Get("GO_IMPORT"))
	}
	args := []string{"build", "-trimpath"}
	args = append(args, strings.Fields(r.Raw("GOBUILDFLAGS:append"))...)
	args = append(args, "-ldflags", ldflags)
	for _, c := range []struct {
		goarch, goarm string
		machine       elf.Machine
	}{
		{"amd64", "", elf.EM_X86_64},  // qemux86-64
		{"arm64", "", elf.EM_AARCH64}, // qemuarm64, raspberrypi4-64
		{"arm", "7", elf.EM_ARM},      // 32-bit armv7 machines
	} {
		t.Run(c.goarch, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "kanto")
			cmd := exec.Command("go", append(args, "-o", out, "./"+pkg)...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+c.goarch, "GOARM="+c.goarm,
				"CGO_ENABLED="+r.Vars["CGO_ENABLED"], "GOPROXY="+r.Vars["GOPROXY"],
				"GOTOOLCHAIN="+r.Vars["GOTOOLCHAIN"], "GOFLAGS="+r.Vars["GOFLAGS"])
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, b)
			}
			f, err := elf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != c.machine {
				t.Errorf("ELF machine %v, want %v", f.Machine, c.machine)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Error("the binary needs a dynamic loader; the recipe builds it static")
				}
			}
			if c.goarch == hostArch(t) {
				got, err := exec.Command(out, "version").Output()
				if err != nil {
					t.Fatalf("kanto version: %v", err)
				}
				if strings.TrimSpace(string(got)) != version {
					t.Errorf("kanto version = %q, want %q", strings.TrimSpace(string(got)), version)
				}
			}
		})
	}
}

func hostArch(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOHOSTARCH").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
