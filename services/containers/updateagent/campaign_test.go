package updateagent_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/internal/mosquittotest"
	cua "github.com/kantofw/kanto/services/containers/updateagent"
	"github.com/kantofw/kanto/services/fwagent/fwagenttest"
	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/store"
	"github.com/kantofw/kanto/services/internal/updateagent"
	"github.com/kantofw/kanto/services/internal/updateapi"
	"github.com/kantofw/kanto/services/softwareupdate"
	"github.com/kantofw/kanto/services/updatemanager"
)

// TestThreeRealDomains runs one desired state through the update manager
// with every domain agent real: containers on the container-management
// daemon and containerd, firmware on the OTA agent with file-backed slots
// (rebooting into slot B during ACTIVATE), software by install script.
func TestThreeRealDomains(t *testing.T) {
	api := daemon(t)
	b := mosquittotest.Start(t, mosquittotest.Options{})
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	fb := map[string][]updateapi.Feedback{}
	states := map[string]bool{}
	ch := make(chan struct{}, 1)
	obs := mqtt.New(mqtt.Options{URL: b.URL(), ClientID: "observer", CleanSession: true})
	h := func(_ context.Context, m mqtt.Message) {
		e, err := updateapi.ParseEnvelope(m.Payload)
		if err != nil {
			return
		}
		prefix, kind, _ := strings.Cut(m.Topic, "/")
		mu.Lock()
		if kind == "currentstate" {
			states[prefix] = true
		} else if e.ActivityID == "real-1" {
			var f updateapi.Feedback
			_ = json.Unmarshal(e.Payload, &f)
			fb[prefix] = append(fb[prefix], f)
		}
		mu.Unlock()
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	for _, f := range []string{"+/desiredstatefeedback", "+/currentstate"} {
		if err := obs.Subscribe(ctx, f, 1, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := obs.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	// Connect returns at CONNACK; the subscriptions go out just after.
	if err := obs.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(3 * time.Minute)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			select {
			case <-ch:
			case <-deadline:
				t.Fatalf("timed out waiting for %s: %+v", what, fb)
			}
		}
	}
	statuses := func(prefix string) []updateapi.Status {
		var out []updateapi.Status
		for _, f := range fb[prefix] {
			out = append(out, f.Status)
		}
		return out
	}
	run := func(domain string, d updateagent.Domain) {
		db, err := store.Open(filepath.Join(dir, domain+".db"), "agent", updateagent.Migrations)
		if err != nil {
			t.Fatal(err)
		}
		a := updateagent.New(updateagent.Options{Domain: domain, DB: db, Log: logging.Discard(),
			MQTT: mqtt.Options{URL: b.URL(), ClientID: "agent-" + domain, CleanSession: true, AutoReconnect: true}}, d)
		done := make(chan struct{})
		go func() { defer close(done); _ = a.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done; db.Close() })
	}

	dev := fwagenttest.New(t, b.URL(), true)
	pkg := tgz(t, map[string]string{"install.sh": "printf 'progress=100\\nmessage=pkg installed\\n' > status\n"})
	files := map[string][]byte{"/fw.kfw": dev.Bundle, "/pkg.tar.gz": pkg}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(files[r.URL.Path]))
	}))
	defer srv.Close()
	dl, _ := softwareupdate.NewDownloader(1, 0, "", nil)
	run("software", &softwareupdate.Domain{Name: "software", Storage: filepath.Join(dir, "sw"), Downloader: dl, ArtifactType: "archive"})
	ca := cua.NewAgent(api, cua.Options{MQTT: mqtt.Options{URL: b.URL(), ClientID: "agent-containers", CleanSession: true, AutoReconnect: true}})
	cdone := make(chan struct{})
	go func() { defer close(cdone); _ = ca.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-cdone })
	wait("agents", func() bool { return states["firmwareupdate"] && states["softwareupdate"] && states["containersupdate"] })

	cfg := updatemanager.Defaults()
	cfg.ThingsEnabled = false
	cfg.Connection.Broker = b.URL()
	cfg.Database = filepath.Join(dir, "um.db")
	cfg.Agents = map[string]*updatemanager.AgentConfig{}
	for _, d := range []string{"containers", "firmware", "software"} {
		cfg.Agents[d] = &updatemanager.AgentConfig{ReadTimeout: updatemanager.Duration(10 * time.Second)}
	}
	s, _ := updatemanager.New(cfg, updatemanager.ServiceDeps{Log: logging.Discard()})
	mdone := make(chan struct{})
	go func() { defer close(mdone); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-mdone })
	wait("manager", func() bool { return states["deviceupdate"] })

	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	ds := updateapi.DesiredState{Domains: []updateapi.Domain{
		{ID: "containers", Components: []updateapi.Component{sleeper("web")}},
		{ID: "firmware", Components: []updateapi.Component{{ID: "os", Version: "2.0", Config: []updateapi.KeyValue{
			{Key: "url", Value: srv.URL + "/fw.kfw"}, {Key: "sha256", Value: sum(dev.Bundle)}}}}},
		{ID: "software", Components: []updateapi.Component{{ID: "pkg", Version: "1.0", Config: []updateapi.KeyValue{
			{Key: "url", Value: srv.URL + "/pkg.tar.gz"}, {Key: "sha256", Value: sum(pkg)}}}}},
	}}
	env, _ := updateapi.NewEnvelope("real-1", time.Now(), ds)
	if err := obs.Publish(ctx, mqtt.Message{Topic: "deviceupdate/desiredstate", QoS: 1, Payload: env}); err != nil {
		t.Fatal(err)
	}
	final := func() bool {
		st := statuses("deviceupdate")
		return len(st) > 0 && (st[len(st)-1] == updateapi.StatusCompleted || st[len(st)-1] == updateapi.StatusIncomplete)
	}
	wait("final feedback", final)
	wait("agents done", func() bool {
		for _, p := range []string{"containersupdate", "firmwareupdate", "softwareupdate"} {
			if !slices.Contains(statuses(p), updateapi.StatusCompleted) {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]updateapi.Status{"IDENTIFYING", "IDENTIFIED", "RUNNING", "COMPLETED"}, statuses("deviceupdate")); diff != "" {
		t.Errorf("manager (-want +got):\n%s", diff)
	}
	phases := []updateapi.Status{"IDENTIFYING", "IDENTIFIED", "DOWNLOADING", "DOWNLOAD_SUCCESS", "UPDATING", "UPDATE_SUCCESS",
		"ACTIVATING", "ACTIVATION_SUCCESS", "CLEANUP_SUCCESS", "COMPLETED"}
	for _, p := range []string{"containersupdate", "firmwareupdate", "softwareupdate"} {
		if diff := cmp.Diff(phases, slices.Compact(statuses(p))); diff != "" {
			t.Errorf("%s (-want +got):\n%s", p, diff)
		}
	}
	if got := dev.Booted(); !slices.Equal(got, []string{"A", "B"}) {
		t.Errorf("boots %v, want A then B", got)
	}
	if cs := containers(t, api); len(cs["web"]) != 1 || !cs["web"][0].running {
		t.Errorf("web: %+v", cs["web"])
	}
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
