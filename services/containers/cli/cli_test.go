package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/services/containers/model"
	kcli "github.com/kantofw/kanto/services/internal/cli"
)

func testEnv() (*kcli.Env, *bytes.Buffer, *bytes.Buffer) {
	var o, e bytes.Buffer
	return &kcli.Env{Name: "kanto-cm", Stdout: &o, Stderr: &e}, &o, &e
}

func TestCreateFlagsToContainer(t *testing.T) {
	env, _, _ := testEnv()
	a := &app{env: env}
	f := &createFlags{}
	c := createCommandWith(f)
	fs := a.newCmdFlags(c)
	args := []string{"-n", "web", "--t", "--e", "A=1", "--e", "B=x,y", "--ports", "127.0.0.1:8080:80,9000-9001:90/udp",
		"--rp", "on-failure", "--rp-cnt", "3", "--rp-to", "7", "-m", "64M", "--devices", "/dev/a:/dev/b",
		"--mp", "/src:/dst:rshared", "--hosts", "h:host_ip", "img:1", "sh", "-c", "echo --not-a-flag"}
	pos, err := fs.parse(args, false)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pos, []string{"img:1", "sh", "-c", "echo --not-a-flag"}); diff != "" {
		t.Fatalf("positional (-got +want):\n%s", diff)
	}
	got, err := f.container(fs, pos)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "web" || !got.IOConfig.Tty || got.Image.Name != "img:1" {
		t.Errorf("basics: %+v", got)
	}
	if diff := cmp.Diff(got.Config.Env, []string{"A=1", "B=x,y"}); diff != "" {
		t.Errorf("env not split on commas (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(got.Config.Cmd, []string{"sh", "-c", "echo --not-a-flag"}); diff != "" {
		t.Errorf("cmd (-got +want):\n%s", diff)
	}
	if len(got.HostConfig.PortMappings) != 2 || got.HostConfig.PortMappings[1].HostPortEnd != 9001 {
		t.Errorf("ports: %+v", got.HostConfig.PortMappings)
	}
	rp := got.HostConfig.RestartPolicy
	if rp.Type != "on-failure" || rp.MaximumRetryCount != 3 || rp.RetryTimeout != 7*time.Second {
		t.Errorf("restart policy: %+v", rp)
	}
	if got.HostConfig.Resources.Memory != "64M" || got.Mounts[0].PropagationMode != "rshared" || got.HostConfig.Devices[0].CgroupPermissions != "rwm" {
		t.Errorf("resources/mounts/devices: %+v %+v %+v", got.HostConfig.Resources, got.Mounts, got.HostConfig.Devices)
	}
	if got.HostConfig.LogConfig.DriverConfig.MaxSize != "100M" || got.HostConfig.LogConfig.DriverConfig.MaxFiles != 2 {
		t.Errorf("log defaults: %+v", got.HostConfig.LogConfig.DriverConfig)
	}
}

func TestInterspersed(t *testing.T) {
	env, _, _ := testEnv()
	fs := newFlagSet(env, "x", "")
	var rp string
	var force bool
	fs.String(&rp, "rp", "", "", "")
	fs.Bool(&force, "force", "f", false, "")
	pos, err := fs.parse([]string{"id1", "--rp", "always", "id2", "-f", "--", "-x"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pos, []string{"id1", "id2", "-x"}); diff != "" || rp != "always" || !force {
		t.Errorf("pos %v rp %q force %v (%s)", pos, rp, force, diff)
	}
}

func TestFilterContainers(t *testing.T) {
	mk := func(st model.Status, img string, code int64) *model.Container {
		return &model.Container{Image: model.Image{Name: img}, State: &model.State{Status: st, ExitCode: code}}
	}
	all := []*model.Container{mk(model.Running, "a", 0), mk(model.Exited, "b", 3), mk(model.Exited, "a", 0)}
	got, err := filterContainers([]string{"status=EXITED", "image=a"}, all)
	if err != nil || len(got) != 1 || got[0] != all[2] {
		t.Errorf("filter: %v %v", got, err)
	}
	if got, _ := filterContainers([]string{"exitcode=3"}, all); len(got) != 1 {
		t.Errorf("exitcode filter: %v", got)
	}
	if _, err := filterContainers([]string{"color=red"}, all); err == nil || err.Error() != "no filter: color" {
		t.Errorf("unknown filter: %v", err)
	}
}

func TestDialTarget(t *testing.T) {
	for in, want := range map[string]string{
		"/run/cm.sock":        "unix:///run/cm.sock",
		"unix:///run/cm.sock": "unix:///run/cm.sock",
		"tcp://127.0.0.1:1":   "passthrough:///127.0.0.1:1",
	} {
		if got, err := dialTarget(in); err != nil || got != want {
			t.Errorf("dialTarget(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := dialTarget("http://x"); err == nil {
		t.Error("http accepted")
	}
}

func TestHelpAndErrors(t *testing.T) {
	env, out, errOut := testEnv()
	if err := Main(context.Background(), env, []string{"stop", "--help"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "-s, --signal string") || !strings.Contains(out.String(), `(default "SIGTERM")`) {
		t.Errorf("stop --help:\n%s", out)
	}
	err := Main(context.Background(), env, []string{"nope"})
	if kcli.ExitCode(err) != 1 || !strings.Contains(errOut.String(), "Error: unknown command \"nope\"") {
		t.Errorf("unknown command: %v %q", err, errOut)
	}
}
