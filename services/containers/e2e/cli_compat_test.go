package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kantofw/kanto/services/containers/cmtest"
	"github.com/kantofw/kanto/services/containers/model"
)

// TestCLICompat walks kanto-cm through the situations upstream's black-box
// CLI suite covers (one subtest per command), against one daemon as that
// suite does. The image is a stand-in for upstream's long-running service
// image: a busybox loop that writes a line every 0.2s and exits on SIGTERM.
// Outputs are compared on what upstream pins: exit codes, the exact error
// lines on stderr, the ID on stdout, the list table and the JSON of get
// and logs.
func TestCLICompat(t *testing.T) {
	d := setup(t)
	img := tickerImage(t, d)

	// run is one kanto-cm call; stdout, stderr and the exit code are all
	// checked by the callers.
	run := func(args ...string) (string, string, int) { return d.CLI(args...) }
	// fails checks exit 1 and nothing on stdout, and returns the message
	// of the "Error: " line of stderr (with the lines that continue it).
	// Pull progress may come before it.
	fails := func(t *testing.T, args ...string) string {
		t.Helper()
		out, errOut, code := run(args...)
		if code != 1 || out != "" {
			t.Fatalf("kanto-cm %v: exit %d, stdout %q, stderr %q; want exit 1 and no stdout", args, code, out, errOut)
		}
		i := strings.Index("\n"+errOut, "\nError: ")
		if i < 0 {
			t.Fatalf("kanto-cm %v: stderr %q has no Error line", args, errOut)
		}
		return strings.TrimSuffix(errOut[i+len("Error: "):], "\n")
	}
	wantErr := func(t *testing.T, want string, args ...string) {
		t.Helper()
		if got := fails(t, args...); got != want {
			t.Errorf("kanto-cm %v:\n got error %q\nwant error %q", args, got, want)
		}
	}
	wantErrRe := func(t *testing.T, re string, args ...string) {
		t.Helper()
		if got := fails(t, args...); !regexp.MustCompile("^" + re + "$").MatchString(got) {
			t.Errorf("kanto-cm %v:\n got error %q\nwant match %q", args, got, re)
		}
	}
	// create makes a container from the stand-in image and returns its ID.
	create := func(t *testing.T, args ...string) string {
		t.Helper()
		out, errOut, code := run(append(append([]string{"create"}, args...), img)...)
		id := strings.TrimSuffix(out, "\n")
		if code != 0 || !uuidRe.MatchString(id) {
			t.Fatalf("create %v: exit %d stdout %q stderr %q; want a UUID line", args, code, out, errOut)
		}
		return id
	}
	start := func(t *testing.T, id string) {
		t.Helper()
		cli(t, d, "start", id)
		waitStatus(t, d, id, model.Running)
	}
	// Every command reports a missing, unknown or ambiguous container the
	// same way.
	selection := func(t *testing.T, cmd string) {
		t.Helper()
		wantErr(t, "You must provide either an ID or a name for the container via --name (-n) ", cmd)
		wantErr(t, "The requested container with ID = invalid was not found.", cmd, "invalid")
		wantErr(t, "The requested container with name = invalid was not found. Try using an ID instead.", cmd, "-n", "invalid")
	}
	// Every subtest leaves no container behind.
	clean := func(t *testing.T) { t.Cleanup(func() { cleanupDaemon(t, d) }) }

	t.Run("create", func(t *testing.T) {
		clean(t)
		wantErr(t, "container image argument is expected", "create")
		create(t, "-n", "create_plain")
		// An image reference without a path is passed to containerd as
		// given, and containerd's message reaches the user unchanged.
		wantErr(t, `rpc error: code = Unknown desc = failed to resolve reference "invalid": object required`, "create", "invalid")
		// From a file; global flags may follow --file.
		f := filepath.Join(t.TempDir(), "container.json")
		body := `{"container_name": "create_from_file", "image": {"name": "` + img + `"}}`
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := cmtest.RunCLI(d.Bin, "create", "--file", f, "--host", d.Socket)
		if id := strings.TrimSuffix(out, "\n"); code != 0 || !uuidRe.MatchString(id) {
			t.Fatalf("create --file: exit %d %q %q", code, out, errOut)
		} else if c := get(t, d, id); c.Name != "create_from_file" || c.Image.Name != img {
			t.Errorf("created from file: name %q image %q", c.Name, c.Image.Name)
		}
	})

	t.Run("get", func(t *testing.T) {
		clean(t)
		selection(t, "get")
		wantErr(t, "accepts at most 1 arg(s), received 2", "get", "a", "b")
		id := create(t, "-n", "get_container")
		out := cli(t, d, "get", "-n", "get_container")
		var c model.Container
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatalf("get printed no container JSON: %v\n%s", err, out)
		}
		if c.ID != id || c.Name != "get_container" || c.State == nil || c.State.Status != model.Created {
			t.Errorf("get: id %q name %q state %+v", c.ID, c.Name, c.State)
		}
		create(t, "--cap-add", "CAP_NET_ADMIN", "-n", "get_caps")
		out = cli(t, d, "get", "-n", "get_caps")
		var raw struct {
			HostConfig struct {
				ExtraCapabilities []string `json:"extra_capabilities"`
			} `json:"host_config"`
		}
		if err := json.Unmarshal([]byte(out), &raw); err != nil || len(raw.HostConfig.ExtraCapabilities) != 1 || raw.HostConfig.ExtraCapabilities[0] != "CAP_NET_ADMIN" {
			t.Errorf("get of a container created with --cap-add: %v\n%s", err, out)
		}
	})

	t.Run("list", func(t *testing.T) {
		clean(t)
		for _, args := range [][]string{{"list"}, {"list", "-n", "invalid"}} {
			if out := cli(t, d, args...); out != "No containers found.\n" {
				t.Errorf("%v: %q", args, out)
			}
		}
		wantErr(t, `unknown command "invalid" for "kanto-cm list"`, "list", "invalid")
		if out := cli(t, d, "list", "--quiet"); out != "" {
			t.Errorf("list --quiet without containers: %q", out)
		}
		running := create(t, "-n", "list_running")
		start(t, running)
		stopped := create(t, "-n", "list_stopped")
		start(t, stopped)
		cli(t, d, "stop", "-s", "SIGKILL", "-n", "list_stopped")
		waitStatus(t, d, stopped, model.Stopped)
		created := create(t, "-n", "list_created")

		rows := listTable(t, cli(t, d, "list"))
		want := map[string][2]string{running: {"list_running", "Running"}, stopped: {"list_stopped", "Stopped"}, created: {"list_created", "Created"}}
		if len(rows) != len(want) {
			t.Fatalf("list rows: %q", rows)
		}
		for _, r := range rows {
			w, ok := want[r[0]]
			if !ok || r[1] != w[0] || r[2] != img || r[3] != w[1] {
				t.Errorf("list row %q, want id, %v, %s", r, w, img)
			}
			if finished := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$`).MatchString(r[4]); finished != (w[1] == "Stopped") {
				t.Errorf("finished at %q for a %s container", r[4], w[1])
			}
			if r[1] != "list_stopped" && r[5] != "0" {
				t.Errorf("exit code %q for %s", r[5], r[1])
			}
		}
		// Quiet: the IDs on one line, separated by single spaces.
		ids := strings.Split(strings.TrimSuffix(cli(t, d, "list", "--quiet"), "\n"), " ")
		if len(ids) != 3 {
			t.Errorf("list --quiet: %q", ids)
		}
		for _, id := range ids {
			if _, ok := want[id]; !ok {
				t.Errorf("list --quiet: unknown id %q in %q", id, ids)
			}
		}
		if rows := listTable(t, cli(t, d, "list", "--filter", "status=created")); len(rows) != 1 || rows[0][0] != created {
			t.Errorf("list --filter status=created: %q", rows)
		}
		if rows := listTable(t, cli(t, d, "list", "-n", "list_running")); len(rows) != 1 || rows[0][0] != running {
			t.Errorf("list -n: %q", rows)
		}
	})

	t.Run("logs", func(t *testing.T) {
		clean(t)
		selection(t, "logs")
		create(t, "-n", "logs_created")
		wantErr(t, `rpc error: code = Unknown desc = there are no logs for container with status "Created"`, "logs", "-n", "logs_created")

		running := create(t, "-n", "logs_running")
		start(t, running)
		cmtest.WaitFor(t, 60*time.Second, "five log lines", func() bool {
			return len(jsonLines(t, cli(t, d, "logs", running, "--tail", "-1"))) >= 5
		})
		if n := len(jsonLines(t, cli(t, d, "logs", "-n", "logs_running", "-t", "5"))); n != 5 {
			t.Errorf("logs -t 5 printed %d entries", n)
		}

		stopped := create(t, "-n", "logs_stopped")
		start(t, stopped)
		cmtest.WaitFor(t, 60*time.Second, "a log line", func() bool {
			return len(jsonLines(t, cli(t, d, "logs", stopped))) > 0
		})
		cli(t, d, "stop", "-s", "SIGKILL", "-n", "logs_stopped")
		waitStatus(t, d, stopped, model.Stopped)
		if len(jsonLines(t, cli(t, d, "logs", "-n", "logs_stopped"))) == 0 {
			t.Error("no logs of a stopped container")
		}
		wantErr(t, "accepts at most 1 arg(s), received 2", "logs", "a", "b")
	})

	t.Run("remove", func(t *testing.T) {
		clean(t)
		selection(t, "remove")
		created := create(t, "-n", "remove_created")
		cli(t, d, "remove", "-n", "remove_created")
		wantErr(t, "The requested container with ID = "+created+" was not found.", "get", created)

		running := create(t, "-n", "remove_running")
		start(t, running)
		notStopped := `rpc error: code = Unknown desc = container with id = ` + uuidPattern + ` is not stopped - must set the force flag to true to remove it`
		wantErrRe(t, notStopped, "remove", "-n", "remove_running")
		// --time means something with --force only; alone it is ignored.
		wantErrRe(t, notStopped, "remove", "--time", "1s", running)

		// Several IDs: each is tried; one failure is reported alone,
		// several under a heading, one per line.
		a, b := create(t), create(t)
		wantErr(t, "The requested container with ID = nope was not found.", "remove", a, "nope", b)
		if got := cli(t, d, "list", "-q"); strings.TrimSpace(got) != running {
			t.Errorf("left after removing several: %q", got)
		}
		wantErr(t, "containers couldn't be removed due to the following reasons: \n\n"+
			"* The requested container with ID = nope1 was not found.\n"+
			"* The requested container with ID = nope2 was not found.", "remove", "nope1", "nope2")
	})

	t.Run("start", func(t *testing.T) {
		clean(t)
		selection(t, "start")
		id := create(t, "-n", "start_created")
		cli(t, d, "start", "-n", "start_created")
		waitStatus(t, d, id, model.Running)
		wantErr(t, "the container with ID = "+id+" is already running - cannot start it again", "start", "-n", "start_created")
		wantErr(t, "accepts at most 1 arg(s), received 2", "start", "a", "b")
	})

	t.Run("stop", func(t *testing.T) {
		clean(t)
		selection(t, "stop")
		running := create(t, "-n", "stop_running")
		start(t, running)
		cli(t, d, "stop", "-s", "SIGKILL", "-n", "stop_running")
		waitStatus(t, d, running, model.Stopped)
		wantErr(t, "rpc error: code = Unknown desc = cannot perform stop operation for container: "+running+", with state: Stopped", "stop", "-n", "stop_running")
		created := create(t, "-n", "stop_created")
		wantErr(t, "rpc error: code = Unknown desc = cannot perform stop operation for container: "+created+", with state: Created", "stop", "-n", "stop_created")
	})

	t.Run("sysinfo", func(t *testing.T) {
		out := cli(t, d, "sysinfo")
		re := regexp.MustCompile(`^Engine v\S*, API v\S*, \(build \S* \S*\) \nCLI v\S*, API v\S*, \(build \S* \S*\) \n$`)
		if !re.MatchString(out) {
			t.Errorf("sysinfo: %q", out)
		}
		wantErr(t, `unknown command "extra" for "kanto-cm sysinfo"`, "sysinfo", "extra")
	})

	t.Run("update", func(t *testing.T) {
		clean(t)
		selection(t, "update")
		running := create(t, "-n", "update_running")
		start(t, running)
		created := create(t, "-n", "update_created")
		stopped := create(t, "-n", "update_stopped")
		start(t, stopped)
		cli(t, d, "stop", "-n", "update_stopped") // SIGTERM: the loop exits
		waitStatus(t, d, stopped, model.Stopped)
		for _, id := range []string{running, created, stopped} {
			name := get(t, d, id).Name
			cli(t, d, "update", "-n", name, "--rp", "no")
			if c := get(t, d, id); c.HostConfig == nil || c.HostConfig.RestartPolicy == nil || c.HostConfig.RestartPolicy.Type != model.RestartNo {
				t.Errorf("%s after update --rp no: %+v", name, c.HostConfig)
			}
		}
	})
}

const uuidPattern = `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`

var uuidRe = regexp.MustCompile("^" + uuidPattern + "$")

// tickerImage imports an image whose command runs until SIGTERM and logs a
// line every 0.2s, and returns its name.
func tickerImage(t *testing.T, d *cmtest.Daemon) string {
	t.Helper()
	const name = "docker.io/library/kcm-ticker:test"
	img, err := cmtest.BusyboxImage("sh", "-c", `trap 'exit 0' TERM; i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done`)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "ticker.tar")
	if err := img.WriteOCIArchive(archive, name); err != nil {
		t.Fatal(err)
	}
	cli(t, d, "import", archive)
	return name
}

// listTable returns the data rows of `kanto-cm list` as trimmed cells,
// after checking the table's frame: a blank line, the header, a row of
// dashes, the rows, a blank line, with '|' ending every cell.
func listTable(t *testing.T, out string) [][]string {
	t.Helper()
	lines := strings.Split(out, "\n")
	if len(lines) < 5 || lines[0] != "" || lines[len(lines)-2] != "" || lines[len(lines)-1] != "" {
		t.Fatalf("list table frame:\n%s", out)
	}
	cells := func(l string) []string {
		parts := strings.Split(l, "|")
		if len(parts) != 7 || parts[6] != "" {
			t.Fatalf("list line %q: want 6 cells each ended by '|'", l)
		}
		for i := range parts[:6] {
			parts[i] = strings.TrimSpace(parts[i])
		}
		return parts[:6]
	}
	if got := strings.Join(cells(lines[1]), ","); got != "ID,Name,Image,Status,Finished At,Exit Code" {
		t.Errorf("list header: %q", got)
	}
	for _, c := range cells(lines[2]) {
		if strings.Trim(c, "-") != "" || len(c) < 10 {
			t.Errorf("list separator: %q", lines[2])
		}
	}
	var rows [][]string
	for _, l := range lines[3 : len(lines)-2] {
		rows = append(rows, cells(l))
	}
	return rows
}

// jsonLines checks that every line of `kanto-cm logs` is a JSON log entry
// and returns them.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var entries []map[string]any
	for _, l := range strings.Split(out, "\n") {
		if l == "" {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		if _, ok := e["log"]; !ok || e["stream"] == nil || e["time"] == nil {
			t.Fatalf("log line %q lacks log, stream or time", l)
		}
		entries = append(entries, e)
	}
	return entries
}
