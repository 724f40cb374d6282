package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/status"

	"github.com/kantofw/kanto/internal/testenv"
	ctrsvc "github.com/kantofw/kanto/services/containers/api/services/containers"
	"github.com/kantofw/kanto/services/containers/cmtest"
	"github.com/kantofw/kanto/services/containers/model"
)

func splitFields(s string) []string { return strings.Fields(s) }

// cli runs a kanto-cm command that must succeed.
func cli(t *testing.T, d *cmtest.Daemon, args ...string) string {
	t.Helper()
	out, errOut, code := d.CLI(args...)
	if code != 0 {
		t.Fatalf("kanto-cm %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

// cliFail runs a kanto-cm command that must fail with exit 1 and returns
// its stderr.
func cliFail(t *testing.T, d *cmtest.Daemon, args ...string) string {
	t.Helper()
	out, errOut, code := d.CLI(args...)
	if code != 1 {
		t.Fatalf("kanto-cm %v: exit %d, want 1\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	// Pull progress may precede the error; the error is the last line.
	if !strings.HasPrefix(errOut, "Error: ") && !strings.Contains(errOut, "\nError: ") {
		t.Errorf("stderr %q has no \"Error: \" line", errOut)
	}
	return errOut
}

func get(t *testing.T, d *cmtest.Daemon, id string) *model.Container {
	t.Helper()
	c := new(model.Container)
	if err := json.Unmarshal([]byte(cli(t, d, "get", id)), c); err != nil {
		t.Fatal(err)
	}
	return c
}

func waitStatus(t *testing.T, d *cmtest.Daemon, id string, want model.Status) *model.Container {
	t.Helper()
	var c *model.Container
	cmtest.WaitFor(t, 60*time.Second, "status "+want.String(), func() bool {
		c = get(t, d, id)
		return c.State.Status == want
	})
	return c
}

func TestCLILifecycle(t *testing.T) {
	d := setup(t)
	id := strings.TrimSpace(cli(t, d, "create", "-n", "life", "--e", "FOO=bar", "--log-mode", "non-blocking", "--log-max-buffer-size", "64k", testImage, "sh", "-c", "trap 'exit 3' TERM; echo hello $FOO $IMAGE_VAR; echo oops >&2; while true; do sleep 0.1; done"))
	if len(id) != 36 {
		t.Fatalf("create printed %q, want a UUID", id)
	}
	c := get(t, d, id)
	if c.State.Status != model.Created || c.Name != "life" || c.HostName != "life-host" {
		t.Errorf("after create: status %v name %q host %q", c.State.Status, c.Name, c.HostName)
	}
	if got := cli(t, d, "list"); !strings.Contains(got, "Created") || !strings.Contains(got, id) {
		t.Errorf("list:\n%s", got)
	}
	if errOut := cliFail(t, d, "logs", id); !strings.Contains(errOut, `there are no logs for container with status "Created"`) {
		t.Errorf("logs of a created container: %s", errOut)
	}
	cli(t, d, "start", "-n", "life")
	c = waitStatus(t, d, id, model.Running)
	if c.State.Pid <= 0 || c.NetworkSettings == nil || c.NetworkSettings.Networks["bridge"].IPAddress == "" {
		t.Errorf("running container: pid %d network %+v", c.State.Pid, c.NetworkSettings)
	}
	errOut := cliFail(t, d, "start", id)
	if !strings.Contains(errOut, "is already running - cannot start it again") {
		t.Errorf("second start: %s", errOut)
	}
	var logs string
	cmtest.WaitFor(t, 30*time.Second, "logs", func() bool {
		logs = cli(t, d, "logs", id)
		return strings.Contains(logs, "oops")
	})
	if !strings.Contains(logs, `"log":"hello bar from-image\n","stream":"stdout"`) || !strings.Contains(logs, `"stream":"stderr"`) {
		t.Errorf("logs:\n%s", logs)
	}
	cli(t, d, "pause", id)
	waitStatus(t, d, id, model.Paused)
	// The CLI refuses before calling Start; the daemon refuses on its own
	// for any other API client.
	if errOut := cliFail(t, d, "start", id); !strings.Contains(errOut, "is paused - cannot start it - use unpause instead") {
		t.Errorf("start while paused (CLI): %s", errOut)
	}
	cl, _ := client(t, d)
	_, err := cl.Start(ctx(t), &ctrsvc.StartContainerRequest{Id: id})
	if s, _ := status.FromError(err); err == nil || !strings.Contains(s.Message(), "the container with id = "+id+" is paused - cannot start it - try unpausing it instead") {
		t.Errorf("start while paused (API): %v", err)
	}
	cli(t, d, "unpause", id)
	waitStatus(t, d, id, model.Running)
	cli(t, d, "rename", id, "life2")
	if got := cli(t, d, "list", "-q", "--filter", "status=running"); strings.TrimSpace(got) != id {
		t.Errorf("list -q: %q", got)
	}
	cli(t, d, "stop", "-t", "5s", "-n", "life2")
	c = waitStatus(t, d, id, model.Stopped)
	if c.State.ExitCode != 3 {
		t.Errorf("exit code after SIGTERM: %d, want 3 (the trap)", c.State.ExitCode)
	}
	if !c.ManuallyStopped {
		t.Error("manually_stopped not set")
	}
	cli(t, d, "remove", id)
	if got := cli(t, d, "list"); strings.TrimSpace(got) != "No containers found." {
		t.Errorf("list after remove: %q", got)
	}
	errOut = cliFail(t, d, "get", id)
	if !strings.Contains(errOut, "The requested container with ID = "+id+" was not found.") {
		t.Errorf("get removed: %s", errOut)
	}
}

// TestTCPTransport serves the API on TCP loopback and uses it with
// kanto-cm --host tcp://.
func TestTCPTransport(t *testing.T) {
	port := testenv.FreePort(t)
	d := setup(t, "--grpc-serv-netp", "tcp4", "--grpc-serv-ap", fmt.Sprintf("127.0.0.1:%d", port))
	out, errOut, code := cmtest.RunCLI(d.Bin, "--host", fmt.Sprintf("tcp://127.0.0.1:%d", port), "sysinfo")
	if code != 0 || !strings.HasPrefix(out, "Engine v") {
		t.Errorf("sysinfo over TCP: exit %d %q %q", code, out, errOut)
	}
}
