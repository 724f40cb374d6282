package builder

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Our ELF walk finds what ldd finds, for a dynamically linked host program.
func TestSharedDepsMatchesLdd(t *testing.T) {
	prog := "/usr/sbin/mosquitto"
	if _, err := os.Stat(prog); err != nil {
		prog = "/bin/ls"
	}
	ldd, err := exec.LookPath("ldd")
	if err != nil {
		t.Skip("ldd not installed")
	}
	out, err := exec.Command(ldd, prog).Output()
	if err != nil {
		t.Skipf("ldd: %v", err)
	}
	got, err := sharedDeps(prog)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, p := range got {
		have[strings.TrimPrefix(strings.TrimPrefix(p, "/usr"), "/lib/x86_64-linux-gnu/")] = true
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "linux-vdso") {
			continue
		}
		name := f[0]
		if strings.HasPrefix(name, "/") {
			if !have[strings.TrimPrefix(name, "/usr")] && !contains(got, name) {
				t.Errorf("interpreter %s missing from %v", name, got)
			}
			continue
		}
		if !have[name] {
			t.Errorf("ldd lists %s, sharedDeps does not: %v", name, got)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
