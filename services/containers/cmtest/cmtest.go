// Package cmtest runs the real components the container-management tests
// need: a private containerd (own root, state and socket), the kanto
// binary, a busybox OCI image built from the host's static busybox, and a
// Debian docker-registry with TLS and basic auth. Nothing is downloaded.
package cmtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kantofw/kanto/internal/testenv"
)

// Requirements checks for root and the host programs; it skips (or fails in
// CI) when something is missing.
func Requirements(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t)
	for _, p := range []string{"containerd", "runc", "containerd-shim-runc-v2", "iptables"} {
		testenv.LookPath(t, p)
	}
	for _, p := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/portmap", "/bin/busybox"} {
		if _, err := os.Stat(p); err != nil {
			testenv.Missing(t, p+" missing (containernetworking-plugins, busybox-static)")
		}
	}
}

// Containerd is a private containerd.
type Containerd struct {
	Dir    string
	Socket string
	cmd    *exec.Cmd
	log    *bytes.Buffer
}

// StartContainerd starts containerd in dir (short path: sockets live
// there). Stop it with Stop.
func StartContainerd(dir string) (*Containerd, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc", filepath.Join(dir, "opt"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	c := &Containerd{Dir: dir, Socket: sock, log: &bytes.Buffer{}}
	lf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return nil, err
	}
	c.cmd = exec.Command("containerd", "--config", cfgPath, "--log-level", "warn")
	c.cmd.Stdout, c.cmd.Stderr = lf, lf
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	if err := waitSocket(sock, 30*time.Second); err != nil {
		c.Stop()
		log, _ := os.ReadFile(lf.Name())
		return nil, fmt.Errorf("containerd did not start: %w\n%s", err, log)
	}
	return c, nil
}

// Restart stops containerd alone (shims and containers live on, as with a
// containerd upgrade) and starts it again with the same configuration.
func (c *Containerd) Restart() error {
	_ = c.cmd.Process.Signal(os.Interrupt)
	_ = c.cmd.Wait()
	lf, err := os.OpenFile(filepath.Join(c.Dir, "containerd.log"), os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	c.cmd = exec.Command("containerd", "--config", filepath.Join(c.Dir, "config.toml"), "--log-level", "warn")
	c.cmd.Stdout, c.cmd.Stderr = lf, lf
	if err := c.cmd.Start(); err != nil {
		return err
	}
	return waitSocket(c.Socket, 30*time.Second)
}

// Stop stops containerd; shims (and their containers) are killed first.
func (c *Containerd) Stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	// Kill shims started by this containerd (their cmdline names our socket).
	out, _ := exec.Command("pgrep", "-f", "containerd-shim-runc-v2 .*-address "+c.Socket).Output()
	for _, pid := range strings.Fields(string(out)) {
		_ = exec.Command("kill", "-9", pid).Run()
	}
	_ = c.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
	// Unmount what containerd left (overlay snapshots, shm).
	_ = exec.Command("sh", "-c", "grep "+c.Dir+" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l").Run()
}

func waitSocket(path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("socket %s not ready after %v", path, d)
}

// BuildKanto builds the kanto binary into dir and returns its path.
func BuildKanto(dir string) (string, error) {
	out := filepath.Join(dir, "kanto")
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	build := func(pkg string) error {
		args := []string{"build", "-o", out}
		env := append(os.Environ(), "CGO_ENABLED=0")
		if raceEnabled {
			args = append(args, "-race")
			env = append(os.Environ(), "CGO_ENABLED=1")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = root
		cmd.Env = env
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
		}
		return nil
	}
	if err := build("./services/cmd/kanto"); err != nil {
		// Another service being edited in this checkout may not build;
		// the stand-in has the same container-management commands.
		fmt.Fprintf(os.Stderr, "cmtest: %v; using the container-management stand-in\n", err)
		if err := build("./services/containers/cmtest/kanto"); err != nil {
			return "", err
		}
	}
	for _, n := range []string{"kanto-cm", "container-management"} {
		_ = os.Symlink(out, filepath.Join(dir, n))
	}
	return out, nil
}

func moduleRoot() (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(b))), nil
}

// WaitFor polls cond every 50ms until it holds or d passes.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

// Ctx is a context for test calls.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
