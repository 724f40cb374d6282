package cli

import (
	"bytes"
	"context"
	"errors"
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

// TestHelpFlags: every command's help is printed on stdout, with exit 0,
// and lists the flags upstream's kanto-cm has, with the same short forms
// and defaults (the wording is our own).
func TestHelpFlags(t *testing.T) {
	global := []string{"      --debug", "      --host string\n", `(default "/run/container-management/container-management.sock")`, "      --timeout int\n", "(default 30)"}
	tests := map[string][]string{
		"create": {"      --cap-add strings", "      --dec-keys strings", "      --dec-recipients strings", "      --devices strings",
			"      --e stringArray", "  -f, --file string", "      --hosts strings", "      --i\n", "      --log-driver string", `(default "json-file")`,
			"      --log-max-buffer-size string", `(default "1M")`, "      --log-max-files int", "(default 2)", "      --log-max-size string", `(default "100M")`,
			"      --log-mode string", `(default "blocking")`, "      --log-path string", "  -m, --memory string", "      --memory-reservation string",
			"      --memory-swap string", "      --mp strings", "  -n, --name string", "      --network string", `(default "bridge")`, "      --ports strings",
			"      --privileged", "      --rp string", "      --rp-cnt int", "(default 1)", "      --rp-to int", "(default 30)", "      --t\n"},
		"get":     {"  -n, --name string"},
		"list":    {"  -n, --name string", "  -q, --quiet", "      --filter strings"},
		"logs":    {"  -n, --name string", "  -t, --tail int32", "(default 100)"},
		"remove":  {"  -f, --force", "  -n, --name string", "  -t, --time string"},
		"start":   {"      --a\n", "      --i\n", "  -n, --name string"},
		"stop":    {"  -f, --force", "  -n, --name string", "  -s, --signal string", `(default "SIGTERM")`, "  -t, --time string"},
		"sysinfo": {},
		"update": {"  -m, --memory string", "      --memory-reservation string", "      --memory-swap string", "  -n, --name string", "      --rp string",
			"      --rp-cnt int", "(default -2147483648)", "      --rp-to int", "(default -9223372036854775808)"},
	}
	for cmd, want := range tests {
		for _, args := range [][]string{{cmd, "-h"}, {cmd, "--host", "/nowhere.sock", "--help"}} {
			env, out, errOut := testEnv()
			if err := Main(context.Background(), env, args); err != nil {
				t.Errorf("%v: %v", args, err)
			}
			if errOut.Len() != 0 {
				t.Errorf("%v: stderr %q", args, errOut)
			}
			for _, w := range append(want, global...) {
				if !strings.Contains(out.String(), w) {
					t.Errorf("%v: help lacks %q:\n%s", args, w, out)
				}
			}
		}
	}
}

// TestArgCount: surplus arguments are refused before the daemon is
// dialled (the host does not exist), with upstream's messages.
func TestArgCount(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"list", "invalid"}, `unknown command "invalid" for "kanto-cm list"`},
		{[]string{"sysinfo", "x"}, `unknown command "x" for "kanto-cm sysinfo"`},
		{[]string{"get", "a", "b"}, "accepts at most 1 arg(s), received 2"},
		{[]string{"logs", "a", "b", "c"}, "accepts at most 1 arg(s), received 3"},
		{[]string{"start", "a", "b"}, "accepts at most 1 arg(s), received 2"},
		{[]string{"stop", "-n", "x", "a", "b"}, "accepts at most 1 arg(s), received 2"},
		{[]string{"update", "a", "--rp", "no", "b"}, "accepts at most 1 arg(s), received 2"},
		{[]string{"rename", "a", "b", "c"}, "accepts at most 2 arg(s), received 3"},
	}
	for _, tt := range tests {
		env, out, errOut := testEnv()
		err := Main(context.Background(), env, append([]string{"--host", "/nonexistent/cm.sock", "--timeout", "1"}, tt.args...))
		if kcli.ExitCode(err) != 1 || out.Len() != 0 || errOut.String() != "Error: "+tt.want+"\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", tt.args, kcli.ExitCode(err), out, errOut, tt.want)
		}
	}
}

func TestRemoveErrors(t *testing.T) {
	if err := removeErrors(nil); err != nil {
		t.Errorf("no failure: %v", err)
	}
	one := errors.New("The requested container with ID = x was not found.")
	if err := removeErrors([]error{one}); err != one {
		t.Errorf("one failure: %v", err)
	}
	got := removeErrors([]error{one, errors.New("boom")}).Error()
	want := "containers couldn't be removed due to the following reasons: \n\n* The requested container with ID = x was not found.\n* boom"
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("several failures (-got +want):\n%s", diff)
	}
}

// TestFlagErrors: a bad flag gives exit 1, one "Error: " line in
// upstream's wording and no help text anywhere.
func TestFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"list", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"--bogus", "list"}, "unknown flag: --bogus"},
		{[]string{"list", "-x"}, "unknown shorthand flag: 'x' in -x"},
		{[]string{"list", "--name"}, "flag needs an argument: --name"},
		{[]string{"get", "-n"}, "flag needs an argument: 'n' in -n"},
		{[]string{"logs", "-t", "abc"}, `invalid argument "abc" for "-t, --tail" flag: strconv.ParseInt: parsing "abc": invalid syntax`},
		{[]string{"create", "--rp-cnt", "x", "img"}, `invalid argument "x" for "--rp-cnt" flag: strconv.ParseInt: parsing "x": invalid syntax`},
		{[]string{"logs", "--tail", "4294967296", "x"}, `invalid argument "4294967296" for "-t, --tail" flag: strconv.ParseInt: parsing "4294967296": value out of range`},
		{[]string{"list", "-q=maybe"}, `invalid argument "maybe" for "-q, --quiet" flag: strconv.ParseBool: parsing "maybe": invalid syntax`},
	}
	for _, tt := range tests {
		env, out, errOut := testEnv()
		err := Main(context.Background(), env, tt.args)
		if kcli.ExitCode(err) != 1 || out.Len() != 0 || errOut.String() != "Error: "+tt.want+"\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", tt.args, kcli.ExitCode(err), out, errOut, tt.want)
		}
	}
}
