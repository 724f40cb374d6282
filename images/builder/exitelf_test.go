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

func TestBareInitWrites(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("needs linux/amd64")
	}
	if os.Geteuid() == 0 {
		// As root the reboot(2) call would power off this machine; only
		// the message is checked, by a non-root run.
		t.Skip("would power off the host when run as root")
	}
	p := filepath.Join(t.TempDir(), "bare")
	if err := os.WriteFile(p, bareInit(), 0o755); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(p).Output() // reboot fails with EPERM, then falls off the end
	if string(out) != "BARE-UP\n" {
		t.Errorf("output %q, want BARE-UP", out)
	}
}
