// Package libubootenv runs Debian's fw_printenv and fw_setenv
// (libubootenv-tool) on a fw_env.config for tests that check our U-Boot
// environment code against the reference implementation. It does not
// import package bootenv, so that package's own tests can use it.
package libubootenv

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/kantofw/kanto/internal/testenv"
)

// Printenv returns the environment fw_printenv -c cfg prints; a line that
// is not KEY=VALUE fails the test.
func Printenv(t testing.TB, cfg string) map[string]string {
	t.Helper()
	out, err := exec.Command(testenv.LookPath(t, "fw_printenv"), "-c", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("fw_printenv: %v\n%s", err, out)
	}
	env := map[string]string{}
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("fw_printenv line %q", l)
		}
		env[k] = v
	}
	return env
}

// Setenv runs fw_setenv -c cfg key value.
func Setenv(t testing.TB, cfg, key, value string) {
	t.Helper()
	setenv(t, cfg, key, value)
}

// Delete runs fw_setenv -c cfg key: without a value the key is removed.
func Delete(t testing.TB, cfg, key string) {
	t.Helper()
	setenv(t, cfg, key)
}

func setenv(t testing.TB, cfg string, args ...string) {
	t.Helper()
	if out, err := exec.Command(testenv.LookPath(t, "fw_setenv"), append([]string{"-c", cfg}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("fw_setenv %v: %v\n%s", args, err, out)
	}
}
