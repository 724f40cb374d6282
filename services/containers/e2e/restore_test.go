package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kantofw/kanto/services/containers/cmtest"
	"github.com/kantofw/kanto/services/containers/model"
)

// TestHostRebootRestore simulates a reboot: with the daemon stopped, every
// task and containerd container goes away and the network namespaces are
// unmounted. The next daemon brings back what the restart policies ask for.
func TestHostRebootRestore(t *testing.T) {
	d := setup(t)
	loop := "trap 'exit 0' TERM; while true; do sleep 0.2; done"
	ids := map[string]string{}
	for _, rp := range []string{"always", "unless-stopped", "no", "on-failure"} {
		ids[rp] = strings.TrimSpace(cli(t, d, "create", "-n", "rb-"+rp, "--rp", rp, testImage, "sh", "-c", loop))
		cli(t, d, "start", ids[rp])
	}
	stopped := strings.TrimSpace(cli(t, d, "create", "-n", "rb-stopped", "--rp", "always", testImage, "sh", "-c", loop))
	cli(t, d, "start", stopped)
	cli(t, d, "stop", stopped)
	d.Stop()
	// "Reboot": every task of the namespace goes away.
	ctr := func(args ...string) {
		cmd := exec.Command("ctr", append([]string{"--address", env.containerd.Socket, "-n", "kanto-cm-test"}, args...)...)
		out, _ := cmd.CombinedOutput()
		t.Logf("ctr %v: %s", args, out)
	}
	for _, id := range ids {
		ctr("task", "kill", "-s", "SIGKILL", id)
	}
	time.Sleep(500 * time.Millisecond)
	for _, id := range ids {
		ctr("task", "delete", "-f", id) // containerd containers survive a reboot, tasks do not
	}
	// The network namespaces are kept: a real reboot also flushes iptables,
	// which a test on a shared host cannot do, and without the namespace
	// the bridge plugin could not find the rules to remove.
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	for _, rp := range []string{"always", "unless-stopped"} {
		c := waitStatus(t, d, ids[rp], model.Running)
		if c.RestartCount != 1 {
			t.Errorf("%s: restart count %d", rp, c.RestartCount)
		}
	}
	for _, rp := range []string{"no", "on-failure"} {
		if c := get(t, d, ids[rp]); c.State.Status != model.Exited {
			t.Errorf("%s: status %v, want Exited", rp, c.State.Status)
		}
	}
	if c := get(t, d, stopped); c.State.Status != model.Stopped {
		t.Errorf("manually stopped always container: %v", c.State.Status)
	}
	// The restarted containers are managed: stop works.
	cli(t, d, "stop", ids["always"])
}

// TestDeployment creates containers from descriptors at start, once: a
// second start changes nothing (also for a descriptor without a name), and
// a changed descriptor updates the container.
func TestDeployment(t *testing.T) {
	cmtest.Requirements(t)
	deployDir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(deployDir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("web.json", `{"container_name": "web", "image": {"name": "`+testImage+`"}, "config": {"cmd": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]}}`)
	write("noname.json", `{"image": {"name": "`+testImage+`"}, "config": {"cmd": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]}}`)
	write("broken.json", `{"image": `)
	write("ignored.txt", `{"image": {"name": "x"}}`)
	d := setup(t, "--deployment-ctr-dir", deployDir)
	// The image is imported after the daemon started, so the first deploy
	// failed to pull; a restart deploys.
	d.Stop()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	var first string
	cmtest.WaitFor(t, 60*time.Second, "two deployed containers running", func() bool {
		first = cli(t, d, "list", "-q", "--filter", "status=running")
		return len(strings.Fields(first)) == 2
	})
	names := cli(t, d, "list")
	if !strings.Contains(names, "web") || !strings.Contains(names, "noname") {
		t.Errorf("deployed names:\n%s", names)
	}
	d.Stop()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	if again := cli(t, d, "list", "-q"); len(strings.Fields(again)) != 2 {
		t.Errorf("second start: %q, want the same 2 containers as %q", again, first)
	}
	// A resources-only change is an update in place.
	write("web.json", `{"container_name": "web", "image": {"name": "`+testImage+`"}, "host_config": {"resources": {"memory": "64M"}}, "config": {"cmd": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]}}`)
	webID := strings.TrimSpace(cli(t, d, "list", "-q", "-n", "web"))
	d.Stop()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	c := get(t, d, webID)
	if c.HostConfig.Resources == nil || c.HostConfig.Resources.Memory != "64M" || c.State.Status != model.Running {
		t.Errorf("after update: resources %+v status %v", c.HostConfig.Resources, c.State.Status)
	}
}

func TestCLIMisc(t *testing.T) {
	d := setup(t)
	out := cli(t, d, "sysinfo")
	if !strings.HasPrefix(out, "Engine v") || !strings.Contains(out, "\nCLI v") {
		t.Errorf("sysinfo: %q", out)
	}
	// start --a prints the output until the container exits.
	id := strings.TrimSpace(cli(t, d, "create", "--rp", "no", testImage, "sh", "-c", "sleep 0.5; echo attached-out; echo attached-err >&2"))
	out = cli(t, d, "start", "--a", id)
	if !strings.Contains(out, "attached-out") || !strings.Contains(out, "attached-err") {
		t.Errorf("start --a printed %q", out)
	}
	// update of memory on a running container, then removal of the limit.
	run := strings.TrimSpace(cli(t, d, "create", "-n", "upd", "-m", "32M", testImage, "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"))
	cli(t, d, "start", run)
	cli(t, d, "update", "-n", "upd", "-m", "64M", "--memory-swap", "128M")
	c := get(t, d, run)
	if c.HostConfig.Resources.Memory != "64M" || c.HostConfig.Resources.MemorySwap != "128M" {
		t.Errorf("after update: %+v", c.HostConfig.Resources)
	}
	cli(t, d, "update", run, "-m", "-1", "--memory-swap", "-1")
	if c := get(t, d, run); c.HostConfig.Resources != nil && c.HostConfig.Resources.Memory != "" {
		t.Errorf("after removing the limit: %+v", c.HostConfig.Resources)
	}
	// remove several at once, one unknown: the others go, and the one
	// failure is reported on its own (as upstream; several failures get a
	// heading, see TestCompatRemove).
	errOut := cliFail(t, d, "remove", "-f", id, "nope", run)
	if errOut != "Error: The requested container with ID = nope was not found.\n" {
		t.Errorf("remove many: %q", errOut)
	}
	if got := cli(t, d, "list"); strings.TrimSpace(got) != "No containers found." {
		t.Errorf("left after remove: %s", got)
	}
	// Help and completion need no daemon.
	help, _, code := cmtest.RunCLI(env.kanto, "create", "--help")
	if code != 0 || !strings.Contains(help, "--rp-cnt int") || !strings.Contains(help, "-m, --memory string") {
		t.Errorf("create --help (exit %d):\n%s", code, help)
	}
	comp, _, code := cmtest.RunCLI(env.kanto, "completion", "bash")
	if code != 0 || !strings.Contains(comp, "complete -F _kanto_cm kanto-cm") || !strings.Contains(comp, "--log-max-size") {
		t.Errorf("completion (exit %d):\n%s", code, comp)
	}
}

// TestContainerdRestart: containerd restarts (an upgrade) while containers
// run; the daemon keeps managing them and still sees their exits.
func TestContainerdRestart(t *testing.T) {
	d := setup(t)
	loop := strings.TrimSpace(cli(t, d, "create", "-n", "loop", testImage, "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"))
	later := strings.TrimSpace(cli(t, d, "create", "-n", "later", "--rp", "no", testImage, "sh", "-c", "sleep 4; exit 5"))
	cli(t, d, "start", loop)
	cli(t, d, "start", later)
	if err := env.containerd.Restart(); err != nil {
		t.Fatal(err)
	}
	c := waitStatus(t, d, later, model.Exited)
	if c.State.ExitCode != 5 {
		t.Errorf("exit code after the containerd restart: %d, want 5", c.State.ExitCode)
	}
	if get(t, d, loop).State.Status != model.Running {
		t.Fatal("loop container not running after the containerd restart")
	}
	cli(t, d, "stop", loop)
	waitStatus(t, d, loop, model.Stopped)
}

// TestInteractive: start --a --i feeds the CLI's stdin to a container
// created with --i and prints its output; the output is also logged.
func TestInteractive(t *testing.T) {
	d := setup(t)
	id := strings.TrimSpace(cli(t, d, "create", "--i", "--rp", "no", testImage, "sh", "-c", "read a; read b; echo got $a and $b; cat; echo done >&2"))
	cmd := exec.Command(d.Bin, "kanto-cm", "--host", d.Socket, "start", "--a", "--i", id)
	cmd.Stdin = strings.NewReader("first\nsecond\nrest of input\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("start --a --i: %v\n%s", err, out)
	}
	for _, want := range []string{"got first and second", "rest of input", "done"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	waitStatus(t, d, id, model.Exited)
	if logs := cli(t, d, "logs", id); !strings.Contains(logs, `"log":"got first and second\n","stream":"stdout"`) {
		t.Errorf("logs: %s", logs)
	}
}
