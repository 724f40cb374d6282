package builder

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

func TestExitELFRuns(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("needs linux/amd64")
	}
	p := filepath.Join(t.TempDir(), "exit1")
	if err := os.WriteFile(p, exitELF(), 0o755); err != nil {
		t.Fatal(err)
	}
	err := exec.Command(p).Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("running the ELF: %v, want exit status 1", err)
	}
}
