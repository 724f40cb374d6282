package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kantofw/kanto/internal/testenv"
	"github.com/kantofw/kanto/services/containers/cmtest"
	"github.com/kantofw/kanto/services/containers/model"
)

func TestRestartPolicies(t *testing.T) {
	d := setup(t)
	onFail := strings.TrimSpace(cli(t, d, "create", "-n", "fails", "--rp", "on-failure", "--rp-cnt", "2", "--rp-to", "1", testImage, "sh", "-c", "exit 7"))
	always := strings.TrimSpace(cli(t, d, "create", "-n", "always", "--rp", "always", testImage, "sh", "-c", "sleep 0.2; exit 0"))
	never := strings.TrimSpace(cli(t, d, "create", "-n", "never", "--rp", "no", testImage, "sh", "-c", "exit 3"))
	for _, id := range []string{onFail, always, never} {
		cli(t, d, "start", id)
	}
	// on-failure: the first run and 2 restarts, then it stays Exited.
	cmtest.WaitFor(t, 60*time.Second, "on-failure retries exhausted", func() bool {
		c := get(t, d, onFail)
		return c.RestartCount == 2 && c.State.Status == model.Exited && !c.State.Restarting
	})
	c := get(t, d, onFail)
	if c.State.ExitCode != 7 {
		t.Errorf("on-failure exit code %d", c.State.ExitCode)
	}
	cmtest.WaitFor(t, 60*time.Second, "always restarted 3 times", func() bool {
		return get(t, d, always).RestartCount >= 3
	})
	c = waitStatus(t, d, never, model.Exited)
	if c.RestartCount != 0 || c.State.ExitCode != 3 {
		t.Errorf("no policy: restarts %d exit %d", c.RestartCount, c.State.ExitCode)
	}
	// A manual stop is final, even for always.
	cmtest.WaitFor(t, 30*time.Second, "always running", func() bool { return get(t, d, always).State.Status == model.Running })
	out, errOut, code := d.CLI("stop", always)
	if code != 0 && !strings.Contains(errOut, "cannot perform stop operation") {
		t.Fatalf("stop always: %s %s", out, errOut)
	}
	time.Sleep(time.Second) // give a wrong restart the chance to happen
	if st := get(t, d, always).State.Status; st == model.Running {
		t.Errorf("always container restarted after a manual stop")
	}
	// Update of the policy applies at once to an exited container.
	cli(t, d, "update", never, "--rp", "always")
	cmtest.WaitFor(t, 30*time.Second, "never restarted after update to always", func() bool {
		return get(t, d, never).RestartCount > 0
	})
}

func TestMemoryLimitOOM(t *testing.T) {
	d := setup(t)
	id := strings.TrimSpace(cli(t, d, "create", "-m", "8M", "--memory-swap", "8M", "--rp", "no", testImage,
		"sh", "-c", "exec dd if=/dev/zero of=/dev/null bs=64M count=1"))
	cli(t, d, "start", id)
	c := waitStatus(t, d, id, model.Exited)
	if !c.State.OOMKilled || c.State.Error != "OOM Killed" || c.State.ExitCode != 137 {
		t.Errorf("state after OOM: %+v", c.State)
	}
	if c.HostConfig.Resources.Memory != "8M" {
		t.Errorf("resources: %+v", c.HostConfig.Resources)
	}
}

func TestLogRotation(t *testing.T) {
	d := setup(t)
	logDir := filepath.Join(d.Dir, "logs")
	id := strings.TrimSpace(cli(t, d, "create", "--log-max-size", "1k", "--log-max-files", "3", "--log-path", logDir, "--rp", "no", testImage,
		"sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done"))
	cli(t, d, "start", id)
	waitStatus(t, d, id, model.Exited)
	dir := filepath.Join(logDir, id)
	var files []string
	cmtest.WaitFor(t, 10*time.Second, "log driver done", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "json.log"))
		return strings.Contains(string(b), "line-299")
	})
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		files = append(files, e.Name())
		fi, _ := e.Info()
		if fi.Size() > 1024 {
			t.Errorf("%s is %d bytes, over the 1k limit", e.Name(), fi.Size())
		}
	}
	if strings.Join(files, " ") != "json.log json.log.1 json.log.2" {
		t.Errorf("log files %v, want json.log json.log.1 json.log.2", files)
	}
	all := cli(t, d, "logs", "--tail", "-1", id)
	if !strings.HasSuffix(strings.TrimSpace(all), `"log":"line-299\n","stream":"stdout","time":"`+lastTime(all)+`"}`) {
		t.Errorf("last line of logs:\n%s", all[max(0, len(all)-200):])
	}
}

func lastTime(s string) string {
	i := strings.LastIndex(s, `"time":"`)
	if i < 0 {
		return ""
	}
	rest := s[i+8:]
	return rest[:strings.IndexByte(rest, '"')]
}

// TestDaemonKill9 kills the daemon with SIGKILL and starts it again: the
// container keeps running (same pid), is still managed, and its output
// produced meanwhile is in its log.
func TestDaemonKill9(t *testing.T) {
	d := setup(t)
	id := strings.TrimSpace(cli(t, d, "create", "-n", "survivor", testImage, "sh", "-c", "trap 'exit 0' TERM; i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done"))
	cli(t, d, "start", id)
	before := waitStatus(t, d, id, model.Running)
	logFile := filepath.Join(d.Dir, "home", "containers", id, "json.log")
	var last int
	cmtest.WaitFor(t, 30*time.Second, "first ticks", func() bool { last = lastTick(logFile); return last >= 0 })
	d.Kill9()
	// The shim-run log driver keeps writing while the daemon is down.
	cmtest.WaitFor(t, 30*time.Second, "ticks logged while the daemon is down", func() bool { return lastTick(logFile) > last+2 })
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	after := get(t, d, id)
	if after.State.Status != model.Running || after.State.Pid != before.State.Pid {
		t.Fatalf("after restart: status %v pid %d (was %d)", after.State.Status, after.State.Pid, before.State.Pid)
	}
	// Also survives a graceful daemon stop (SIGTERM) and SIGHUP.
	d.Stop()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	d.Signal(syscall.SIGHUP)
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	if c := get(t, d, id); c.State.Pid != before.State.Pid {
		t.Fatalf("graceful restart changed pid: %d", c.State.Pid)
	}
	if logs := cli(t, d, "logs", "--tail", "-1", id); !strings.Contains(logs, fmt.Sprintf("tick-%d\\n", last+1)) {
		t.Errorf("logs lack tick-%d written while the daemon was down", last+1)
	}
	cli(t, d, "stop", id)
	c := waitStatus(t, d, id, model.Stopped)
	if c.State.ExitCode != 0 {
		t.Errorf("exit code %d", c.State.ExitCode)
	}
}

// lastTick returns the highest tick-N in a json.log, -1 if none.
func lastTick(path string) int {
	b, _ := os.ReadFile(path)
	best := -1
	for _, f := range strings.Split(string(b), "tick-")[1:] {
		n := 0
		i := 0
		for ; i < len(f) && f[i] >= '0' && f[i] <= '9'; i++ {
			n = n*10 + int(f[i]-'0')
		}
		if i > 0 && n > best {
			best = n
		}
	}
	return best
}

// hostNetState is what the daemon must never change: IP forwarding and the
// filter table (policies and rules).
func hostNetState(t *testing.T) string {
	t.Helper()
	fwd, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	filter, err := exec.Command("iptables", "-w", "-S").Output()
	if err != nil {
		t.Fatal(err)
	}
	return "ip_forward=" + string(fwd) + string(filter)
}

func TestPortPublishing(t *testing.T) {
	before := hostNetState(t)
	d := setup(t)
	t.Cleanup(func() {
		if after := hostNetState(t); after != before {
			t.Errorf("host forwarding/filter table changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
	port := testenv.FreePort(t)
	id := strings.TrimSpace(cli(t, d, "create", "--ports", fmt.Sprintf("127.0.0.1:%d:80", port), testImage, "httpd", "-f", "-p", "80", "-h", "/www"))
	cli(t, d, "start", id)
	c := waitStatus(t, d, id, model.Running)
	if now := hostNetState(t); now != before {
		t.Errorf("forwarding/filter table changed while publishing a port:\n%s", now)
	}
	ip := c.NetworkSettings.Networks["bridge"].IPAddress
	for _, url := range []string{"http://" + net.JoinHostPort(ip, "80") + "/", fmt.Sprintf("http://127.0.0.1:%d/", port)} {
		var body string
		cmtest.WaitFor(t, 30*time.Second, "GET "+url, func() bool {
			r, err := http.Get(url)
			if err != nil {
				return false
			}
			defer r.Body.Close()
			b, _ := io.ReadAll(r.Body)
			body = string(b)
			return r.StatusCode == 200
		})
		if body != "hello from kanto-cm\n" {
			t.Errorf("GET %s = %q", url, body)
		}
	}
	cli(t, d, "remove", "-f", id)
	if r, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port)); err == nil {
		r.Body.Close()
		t.Errorf("port still published after remove")
	}
	// With no container attached, stopping the daemon takes the bridge and
	// our port rules away.
	gw := c.NetworkSettings.Networks["bridge"].Gateway
	d.Stop()
	addrs, err := exec.Command("ip", "-o", "addr", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	if gw == "" || strings.Contains(string(addrs), " "+gw+"/") {
		t.Errorf("bridge with gateway %q still there after the daemon stopped:\n%s", gw, addrs)
	}
	nat, err := exec.Command("iptables", "-w", "-t", "nat", "-S").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(nat), fmt.Sprintf("--dport %d ", port)) {
		t.Errorf("a NAT rule for port %d is left:\n%s", port, nat)
	}
}

func TestHostNetwork(t *testing.T) {
	d := setup(t)
	port := testenv.FreePort(t)
	id := strings.TrimSpace(cli(t, d, "create", "--network", "host", testImage, "httpd", "-f", "-p", fmt.Sprintf("127.0.0.1:%d", port), "-h", "/www"))
	cli(t, d, "start", id)
	waitStatus(t, d, id, model.Running)
	cmtest.WaitFor(t, 30*time.Second, "httpd on the host's loopback", func() bool {
		r, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
	host, _ := os.Hostname()
	if c := get(t, d, id); c.HostName != host {
		t.Errorf("host name %q, want the host's %q", c.HostName, host)
	}
}
