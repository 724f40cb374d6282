package cmtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Daemon is a kanto container-management process.
type Daemon struct {
	Bin    string
	Dir    string
	Socket string // unix socket path, or tcp://host:port with a TCP API
	Args   []string
	cmd    *exec.Cmd
	exited chan struct{}
}

// DaemonArgs are the flags that give a daemon its own directories,
// containerd socket, namespace, bridge and subnet.
func DaemonArgs(dir, containerdSock, bridge, subnet string) []string {
	return []string{
		"--log-file", filepath.Join(dir, "daemon.log"), "--log-level", "DEBUG",
		"--cm-home-dir", filepath.Join(dir, "home"), "--cm-exec-root-dir", filepath.Join(dir, "run"),
		"--ccl-ap", containerdSock, "--ccl-default-ns", "kanto-cm-test",
		"--ccl-home-dir", filepath.Join(dir, "home"), "--ccl-exec-root-dir", filepath.Join(dir, "run"),
		"--net-home-dir", filepath.Join(dir, "home"), "--net-exec-root-dir", filepath.Join(dir, "run"),
		"--net-br-name", bridge, "--net-br-fcidr4", subnet,
		"--grpc-serv-ap", filepath.Join(dir, "cm.sock"),
		"--deployment-home-dir", filepath.Join(dir, "home"), "--deployment-ctr-dir", filepath.Join(dir, "deploy"),
		"--things-enable=false", "--things-home-dir", filepath.Join(dir, "home"),
		"--cm-deflt-ctrs-stop-timeout", "10s",
	}
}

// StartDaemon runs bin container-management with args and waits for its
// socket.
func StartDaemon(t testing.TB, bin, dir string, args []string) *Daemon {
	t.Helper()
	d := &Daemon{Bin: bin, Dir: dir, Socket: apiAddress(args), Args: args}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	return d
}

// Start (re)starts the process.
func (d *Daemon) Start() error {
	if !strings.HasPrefix(d.Socket, "tcp://") {
		_ = os.Remove(d.Socket)
	}
	out, err := os.OpenFile(filepath.Join(d.Dir, "daemon.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	d.cmd = exec.Command(d.Bin, append([]string{"container-management"}, d.Args...)...)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	if err := d.cmd.Start(); err != nil {
		return err
	}
	d.exited = make(chan struct{})
	go func() { _ = d.cmd.Wait(); out.Close(); close(d.exited) }()
	if err := waitAPI(d.Socket, 60*time.Second); err != nil {
		d.Kill9()
		return fmt.Errorf("daemon did not start: %w\n%s", err, d.Logs())
	}
	return nil
}

// Races returns the data race reports in the daemon's output (only a
// -race build writes them).
func (d *Daemon) Races() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "daemon.out"))
	if i := bytes.Index(b, []byte("WARNING: DATA RACE")); i >= 0 {
		return string(b[i:])
	}
	return ""
}

// Logs returns the daemon's log and output.
func (d *Daemon) Logs() string {
	a, _ := os.ReadFile(filepath.Join(d.Dir, "daemon.log"))
	b, _ := os.ReadFile(filepath.Join(d.Dir, "daemon.out"))
	return string(a) + string(b)
}

// DumpStacks makes the daemon write its goroutine stacks to its output.
func (d *Daemon) DumpStacks() {
	if d.cmd != nil && d.cmd.Process != nil {
		_ = d.cmd.Process.Signal(syscall.SIGUSR1)
		time.Sleep(300 * time.Millisecond)
	}
}

// Signal sends sig and waits for the daemon to exit.
func (d *Daemon) Signal(sig syscall.Signal) {
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		d.Kill9()
	}
}

// Stop sends SIGTERM and waits.
func (d *Daemon) Stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		d.Kill9()
	}
}

// Kill9 kills the process with SIGKILL and waits.
func (d *Daemon) Kill9() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Kill()
	<-d.exited
}

// CLI runs `kanto kanto-cm --host <socket> args...`.
func (d *Daemon) CLI(args ...string) (stdout, stderr string, code int) {
	return RunCLI(d.Bin, append([]string{"--host", d.Socket}, args...)...)
}

// RunCLI runs `kanto kanto-cm args...`.
func RunCLI(bin string, args ...string) (stdout, stderr string, code int) {
	cmd := exec.Command(bin, append([]string{"kanto-cm"}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		code = -1
		e.WriteString(err.Error())
	}
	return o.String(), e.String(), code
}

// apiAddress is the API address the flags select (the last one given).
func apiAddress(args []string) string {
	proto, addr := "unix", ""
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--grpc-serv-netp":
			proto = args[i+1]
		case "--grpc-serv-ap":
			addr = args[i+1]
		}
	}
	if strings.HasPrefix(proto, "tcp") {
		return "tcp://" + addr
	}
	return addr
}

func waitAPI(addr string, d time.Duration) error {
	if rest, ok := strings.CutPrefix(addr, "tcp://"); ok {
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			if c, err := net.Dial("tcp", rest); err == nil {
				c.Close()
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		return fmt.Errorf("%s not listening after %v", addr, d)
	}
	return waitSocket(addr, d)
}
