package api

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedCurrent regenerates the Go code into a temp dir and compares
// it with the committed files. It skips when protoc or the plugins are
// missing, since builds never need them.
func TestGeneratedCurrent(t *testing.T) {
	for _, tool := range []string{"protoc", "protoc-gen-go", "protoc-gen-go-grpc"} {
		if _, err := exec.LookPath(tool); err != nil {
			gopath, _ := exec.Command("go", "env", "GOPATH").Output()
			if _, err := os.Stat(filepath.Join(string(bytes.TrimSpace(gopath)), "bin", tool)); err != nil {
				t.Skipf("%s not installed", tool)
			}
		}
	}
	out := t.TempDir()
	cmd := exec.Command("./generate.sh")
	cmd.Env = append(os.Environ(), "OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generate: %v\n%s", err, b)
	}
	n := 0
	err := filepath.WalkDir(filepath.Join(out, "api"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(out, "api"), p)
		got, err := os.ReadFile(rel)
		if err != nil {
			t.Errorf("%s: generated but not committed: %v", rel, err)
			return nil
		}
		want, _ := os.ReadFile(p)
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale; run go generate ./services/containers/api", rel)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("generator produced no files")
	}
}
