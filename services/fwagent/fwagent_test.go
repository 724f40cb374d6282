package fwagent_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/firmware/slot"
	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/fwagent"
	"github.com/kantofw/kanto/services/fwagent/fwagenttest"
	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/store"
	"github.com/kantofw/kanto/services/internal/updateagent"
	"github.com/kantofw/kanto/services/internal/updateagent/updateagenttest"
	"github.com/kantofw/kanto/services/internal/updateapi"
	"github.com/kantofw/kanto/services/softwareupdate"
	"github.com/kantofw/kanto/services/updatemanager"
)

const waitFor = 60 * time.Second

// TestHelperFwAgent is the firmware agent process of a simulated device:
// a reboot ends the process (the parent then runs the bootloader logic and
// starts it again, as a power cycle).
func TestHelperFwAgent(t *testing.T) {
	dir := os.Getenv("FW_DEV_DIR")
	if dir == "" {
		t.Skip("helper process")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cfg := fwagenttest.Config(dir, os.Getenv("FW_BROKER"))
	if err := fwagent.Run(ctx, cfg, fwagenttest.Deps(dir, os.Getenv("FW_HEALTHY") == "1", rebootExit{dir})); err != nil {
		fmt.Fprintln(os.Stderr, "fw agent:", err)
		os.Exit(3)
	}
}

type rebootExit struct{ dir string }

func (r rebootExit) Reboot(context.Context) error {
	_ = os.WriteFile(filepath.Join(r.dir, "reboot-requested"), nil, 0o644)
	os.Exit(0)
	return nil
}

// device is a simulated A/B device (fwagenttest.Disk) whose agent runs in
// a process of its own, so a reboot really ends it.
type device struct {
	*fwagenttest.Disk
	t      *testing.T
	booted []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	broker  string
	healthy bool
	stopped chan struct{}
}

func newDevice(t *testing.T, broker string, healthy bool) *device {
	d := &device{Disk: fwagenttest.NewDisk(t), t: t, broker: broker, healthy: healthy, stopped: make(chan struct{})}
	t.Cleanup(d.shutdown)
	return d
}

// powerOn runs the bootloader logic and starts the agent on the chosen slot;
// whenever the agent reboots, the device powers on again.
func (d *device) powerOn() {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.Boot()
	if err != nil {
		d.t.Error(err)
		return
	}
	d.booted = append(d.booted, s)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFwAgent$")
	h := "0"
	if d.healthy {
		h = "1"
	}
	cmd.Env = append(os.Environ(), "FW_DEV_DIR="+d.Dir, "FW_BROKER="+d.broker, "FW_HEALTHY="+h)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		d.t.Error(err)
		return
	}
	d.cmd = cmd
	// Owned by the device: waits for the agent and power-cycles on reboot.
	go func() {
		_ = cmd.Wait()
		if _, err := os.Stat(filepath.Join(d.Dir, "reboot-requested")); err == nil {
			_ = os.Remove(filepath.Join(d.Dir, "reboot-requested"))
			select {
			case <-d.stopped:
			default:
				d.powerOn()
			}
		}
	}()
}

func (d *device) shutdown() {
	close(d.stopped)
	d.mu.Lock()
	cmd := d.cmd
	d.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
	time.Sleep(50 * time.Millisecond) // let the wait goroutine see stopped
}

func (d *device) bootedSlots() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.booted...)
}

// observer watches every Update Agent API feedback topic.
type observer struct {
	t  *testing.T
	c  *mqtt.Client
	mu sync.Mutex
	fb map[string][]updateapi.Feedback // topic prefix → feedback of the activity
	cs map[string]bool
	ch chan struct{}
	id string
}

func newObserver(t *testing.T, url, id string) *observer {
	o := &observer{t: t, fb: map[string][]updateapi.Feedback{}, cs: map[string]bool{}, ch: make(chan struct{}, 1), id: id}
	o.c = mqtt.New(mqtt.Options{URL: url, ClientID: "observer", CleanSession: true, AutoReconnect: true})
	h := func(_ context.Context, m mqtt.Message) {
		env, err := updateapi.ParseEnvelope(m.Payload)
		if err != nil {
			return
		}
		prefix, kind, _ := strings.Cut(m.Topic, "/")
		o.mu.Lock()
		switch {
		case kind == "desiredstatefeedback" && env.ActivityID == o.id:
			var f updateapi.Feedback
			_ = json.Unmarshal(env.Payload, &f)
			o.fb[prefix] = append(o.fb[prefix], f)
		case kind == "currentstate":
			o.cs[prefix] = true
		}
		o.mu.Unlock()
		select {
		case o.ch <- struct{}{}:
		default:
		}
	}
	ctx := context.Background()
	for _, f := range []string{"+/desiredstatefeedback", "+/currentstate"} {
		if err := o.c.Subscribe(ctx, f, 1, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	// Connect returns at CONNACK; the subscriptions go out just after.
	if err := o.c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.c.Close)
	return o
}

func (o *observer) wait(what string, cond func() bool) {
	o.t.Helper()
	deadline := time.After(waitFor)
	for {
		o.mu.Lock()
		ok := cond()
		o.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-o.ch:
		case <-deadline:
			o.mu.Lock()
			defer o.mu.Unlock()
			o.t.Fatalf("timed out waiting for %s; feedback: %+v", what, o.fb)
		}
	}
}

func (o *observer) statuses(prefix string) []updateapi.Status {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []updateapi.Status
	for _, f := range o.fb[prefix] {
		out = append(out, f.Status)
	}
	return out
}

func (o *observer) final() updateapi.Feedback {
	o.wait("the manager's final feedback", func() bool {
		fs := o.fb["deviceupdate"]
		if len(fs) == 0 {
			return false
		}
		switch fs[len(fs)-1].Status {
		case updateapi.StatusCompleted, updateapi.StatusIncomplete, updateapi.StatusIdentificationFailed:
			return true
		}
		return false
	})
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fb["deviceupdate"][len(o.fb["deviceupdate"])-1]
}

// compact drops consecutive repeats (progress reports of the same phase).
func compact(s []updateapi.Status) []updateapi.Status { return slices.Compact(slices.Clone(s)) }

func runAgent(t *testing.T, url, domain string, d updateagent.Domain, dir string) {
	db, err := store.Open(filepath.Join(dir, domain+".db"), "agent", updateagent.Migrations)
	if err != nil {
		t.Fatal(err)
	}
	a := updateagent.New(updateagent.Options{Domain: domain, DB: db, Log: logging.Discard(),
		MQTT: mqtt.Options{URL: url, ClientID: "agent-" + domain, CleanSession: true, AutoReconnect: true}}, d)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; db.Close() })
}

// runManager runs an update manager for domains against the broker at url
// until the test ends; edit, if not nil, adjusts its configuration.
func runManager(t *testing.T, url, dir string, edit func(*updatemanager.Config), domains ...string) {
	t.Helper()
	cfg := updatemanager.Defaults()
	cfg.ThingsEnabled = false
	cfg.Connection.Broker = url
	cfg.Database = filepath.Join(dir, "um.db")
	cfg.Agents = map[string]*updatemanager.AgentConfig{}
	for _, d := range domains {
		cfg.Agents[d] = &updatemanager.AgentConfig{ReadTimeout: updatemanager.Duration(5 * time.Second)}
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := updatemanager.New(cfg, updatemanager.ServiceDeps{Log: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func tgz(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func hexSHA(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

type campaign struct {
	o   *observer
	dev *device
	pkg []byte
}

// startCampaign runs a device (firmware agent process), the software and a
// containers test agent, the manager, and applies firmware 2.0 + pkg 1.0 +
// one container.
func startCampaign(t *testing.T, healthy bool) *campaign {
	b := mosquittotest.Start(t, mosquittotest.Options{})
	dir := t.TempDir()
	o := newObserver(t, b.URL(), "camp-1")
	dev := newDevice(t, b.URL(), healthy)
	pkg := tgz(t, map[string]string{"install.sh": "printf 'progress=100\\nmessage=pkg installed\\n' > status\n"})
	files := map[string][]byte{"/fw.kfw": dev.Bundle, "/pkg.tar.gz": pkg}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(files[r.URL.Path]))
	}))
	t.Cleanup(srv.Close)

	dev.powerOn()
	dl, _ := softwareupdate.NewDownloader(1, 0, "", nil)
	runAgent(t, b.URL(), "software", &softwareupdate.Domain{Name: "software", Storage: filepath.Join(dir, "sw"), Downloader: dl, ArtifactType: "archive"}, dir)
	runAgent(t, b.URL(), "containers", updateagenttest.New("containers", nil), dir)
	o.wait("agents up", func() bool { return o.cs["firmwareupdate"] && o.cs["softwareupdate"] && o.cs["containersupdate"] })
	runManager(t, b.URL(), dir, nil, "containers", "firmware", "software")
	o.wait("manager up", func() bool { return o.cs["deviceupdate"] })

	ds := updateapi.DesiredState{Domains: []updateapi.Domain{
		{ID: "firmware", Components: []updateapi.Component{{ID: "os", Version: "2.0", Config: []updateapi.KeyValue{
			{Key: "url", Value: srv.URL + "/fw.kfw"}, {Key: "sha256", Value: hexSHA(dev.Bundle)}}}}},
		{ID: "software", Components: []updateapi.Component{{ID: "pkg", Version: "1.0", Config: []updateapi.KeyValue{
			{Key: "url", Value: srv.URL + "/pkg.tar.gz"}, {Key: "sha256", Value: hexSHA(pkg)}}}}},
		{ID: "containers", Components: []updateapi.Component{{ID: "influxdb", Version: "2.7.1"}}},
	}}
	env, _ := updateapi.NewEnvelope("camp-1", time.Now(), ds)
	if err := o.c.Publish(context.Background(), mqtt.Message{Topic: "deviceupdate/desiredstate", QoS: 1, Payload: env}); err != nil {
		t.Fatal(err)
	}
	return &campaign{o: o, dev: dev, pkg: pkg}
}

// TestThreeDomainCampaignAcrossReboot applies firmware (real OTA agent on
// file-backed slots, rebooting), a script package (real software agent)
// and a container (test agent) in one desired state.
func TestThreeDomainCampaignAcrossReboot(t *testing.T) {
	c := startCampaign(t, true)
	final := c.o.final()
	if final.Status != updateapi.StatusCompleted {
		t.Fatalf("final %s %q", final.Status, final.Message)
	}
	if diff := cmp.Diff([]updateapi.Status{"IDENTIFYING", "IDENTIFIED", "RUNNING", "COMPLETED"}, c.o.statuses("deviceupdate")); diff != "" {
		t.Errorf("manager (-want +got):\n%s", diff)
	}
	c.o.wait("firmware agent done", func() bool { return slices.Contains(statusesLocked(c.o, "firmwareupdate"), "COMPLETED") })
	// ACTIVATING three times: the phase start, the reboot, and the phase
	// resumed by the agent after the boot.
	wantFw := []updateapi.Status{"IDENTIFYING", "IDENTIFIED", "DOWNLOADING", "DOWNLOAD_SUCCESS", "UPDATING", "UPDATE_SUCCESS",
		"ACTIVATING", "ACTIVATING", "ACTIVATING", "ACTIVATION_SUCCESS", "CLEANUP_SUCCESS", "COMPLETED"}
	if diff := cmp.Diff(wantFw, c.o.statuses("firmwareupdate")); diff != "" {
		t.Errorf("firmware (-want +got):\n%s", diff)
	}
	wantPhases := []updateapi.Status{"IDENTIFYING", "IDENTIFIED", "DOWNLOADING", "DOWNLOAD_SUCCESS", "UPDATING", "UPDATE_SUCCESS",
		"ACTIVATING", "ACTIVATION_SUCCESS", "CLEANUP_SUCCESS", "COMPLETED"}
	c.o.wait("software done", func() bool { return slices.Contains(statusesLocked(c.o, "softwareupdate"), "COMPLETED") })
	if diff := cmp.Diff(wantPhases, compact(c.o.statuses("softwareupdate"))); diff != "" {
		t.Errorf("software (-want +got):\n%s", diff)
	}
	if got := c.dev.bootedSlots(); !slices.Equal(got, []string{"A", "B"}) {
		t.Errorf("boots %v, want A then B", got)
	}
	var sf slot.StatusFile
	raw, err := os.ReadFile(filepath.Join(c.dev.Dir, "state", "slot-status.json"))
	if err == nil {
		err = json.Unmarshal(raw, &sf)
	}
	if b := sf.Slots["B"]; err != nil || b.Version != "2.0" || b.Status != "good" {
		t.Errorf("slot B status %+v (%v)", b, err)
	}
	for _, a := range final.Actions {
		if a.Status != updateapi.ActionUpdateSuccess {
			t.Errorf("action %+v", a)
		}
	}
}

// TestFirmwareUnhealthyRollsBack: the new slot fails its health checks,
// the OTA agent rolls back to A, and the campaign ends INCOMPLETE.
func TestFirmwareUnhealthyRollsBack(t *testing.T) {
	c := startCampaign(t, false)
	final := c.o.final()
	if final.Status != updateapi.StatusIncomplete || !strings.Contains(final.Message, "[firmware]: firmware 2.0 rolled-back") {
		t.Fatalf("final %s %q", final.Status, final.Message)
	}
	c.o.wait("firmware agent done", func() bool { return slices.Contains(statusesLocked(c.o, "firmwareupdate"), "INCOMPLETE") })
	want := []updateapi.Status{"IDENTIFYING", "IDENTIFIED", "DOWNLOADING", "DOWNLOAD_SUCCESS", "UPDATING", "UPDATE_SUCCESS",
		"ACTIVATING", "ACTIVATING", "ACTIVATING", "ACTIVATION_FAILURE", "CLEANUP_SUCCESS", "INCOMPLETE"}
	if diff := cmp.Diff(want, c.o.statuses("firmwareupdate")); diff != "" {
		t.Errorf("firmware (-want +got):\n%s", diff)
	}
	if got := c.dev.bootedSlots(); !slices.Equal(got, []string{"A", "B", "A"}) {
		t.Errorf("boots %v, want A, B, back to A", got)
	}
}

func statusesLocked(o *observer, prefix string) []updateapi.Status {
	var out []updateapi.Status
	for _, f := range o.fb[prefix] {
		out = append(out, f.Status)
	}
	return out
}
