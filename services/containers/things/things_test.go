package things

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/services/containers/metrics"
	"github.com/kantofw/kanto/services/containers/mgr"
	"github.com/kantofw/kanto/services/containers/model"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

func TestCreateWithConfigMapping(t *testing.T) {
	b, err := os.ReadFile("testdata/createWithConfig.json")
	if err != nil {
		t.Fatal(err)
	}
	var req createRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	c := &model.Container{Image: model.Image{Name: req.ImageRef}, Name: req.Name}
	req.Config.toModel(c)
	model.FillDefaults(c)
	if err := model.Validate(c); err != nil {
		t.Errorf("Validate: %v", err)
	}
	h := c.HostConfig
	if h.NetworkMode != "bridge" || h.RestartPolicy.Type != "on-failure" || h.RestartPolicy.RetryTimeout != 10*time.Second ||
		h.LogConfig.DriverConfig.Type != "json-file" || c.Mounts[0].PropagationMode != "rshared" {
		t.Errorf("enums not mapped: %+v %+v %+v %+v", h.NetworkMode, h.RestartPolicy, h.LogConfig.DriverConfig, c.Mounts)
	}
	back := fromModel(c)
	if back.NetworkMode != "BRIDGE" || back.RestartPolicy.Type != "ON_FAILURE" || back.Log.Type != "JSON_FILE" || back.Log.Mode != "BLOCKING" {
		t.Errorf("twin form: %+v %+v %+v", back.NetworkMode, back.RestartPolicy, back.Log)
	}
	want := req.Config.PortMappings
	want[0].HostPortEnd = 5000 // filled by the defaults
	if diff := cmp.Diff(back.PortMappings, want); diff != "" {
		t.Errorf("ports (-got +want):\n%s", diff)
	}
}

func TestParsePath(t *testing.T) {
	f, s := parsePath("/features/Container:abc/inbox/messages/stopWithOptions")
	if f != "Container:abc" || s != "stopWithOptions" {
		t.Errorf("parsePath = %q %q", f, s)
	}
	for in, want := range map[string]time.Duration{`"5s"`: 5 * time.Second, `3`: 3 * time.Second, `"2"`: 2 * time.Second, `0`: 0} {
		if got, err := parseFrequency(json.RawMessage(in)); err != nil || got != want {
			t.Errorf("parseFrequency(%s) = %v, %v", in, got, err)
		}
	}
	if _, err := parseFrequency(json.RawMessage(`"soon"`)); err == nil {
		t.Error("bad frequency accepted")
	}
}

func FuzzRequests(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req createRequest
		if json.Unmarshal(data, &req) == nil && req.Config != nil {
			c := &model.Container{Image: model.Image{Name: req.ImageRef}}
			req.Config.toModel(c)
			model.FillDefaults(c)
			_ = model.Validate(c)
			_ = fromModel(c)
		}
		var mr metricsReq
		if json.Unmarshal(data, &mr) == nil && mr.Frequency != nil {
			_, _ = parseFrequency(mr.Frequency)
		}
		_, _ = parsePath(string(data))
	})
}

type fakeBroker struct {
	mu   sync.Mutex
	msgs []mqtt.Message
}

func (f *fakeBroker) Publish(_ context.Context, m mqtt.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, m)
	return nil
}

func (f *fakeBroker) Subscribe(context.Context, string, byte, mqtt.Handler) error { return nil }

// listOnly is a Manager with one container; only List and Subscribe are used.
type listOnly struct {
	Manager
	ctrs []*model.Container
}

func (l listOnly) List() []*model.Container { return l.ctrs }
func (listOnly) Subscribe(func(mgr.Event))  {}

// TestRegisterDeletesStaleFeatures: a container removed while the service
// was offline loses its feature at the next registration.
func TestRegisterDeletesStaleFeatures(t *testing.T) {
	state := filepath.Join(t.TempDir(), "features.json")
	os.WriteFile(state, []byte(`["gone","kept"]`), 0o600)
	kept := &model.Container{ID: "kept", Name: "kept", Image: model.Image{Name: "img:1"}}
	model.FillDefaults(kept)
	b := &fakeBroker{}
	th := New(b, listOnly{ctrs: []*model.Container{kept}}, Options{Features: []string{"ContainerFactory"}, StateFile: state})
	th.onThingResponse(context.Background(), mqtt.Message{Payload: []byte(`{"deviceId":"ns:dev","tenantId":"t"}`)})
	var deleted, modified []string
	for _, m := range b.msgs {
		if m.Topic != "e/t/ns:dev:edge:containers" {
			t.Errorf("topic %q", m.Topic)
		}
		var e struct{ Topic, Path string }
		json.Unmarshal(m.Payload, &e)
		if strings.HasSuffix(e.Topic, "/commands/delete") {
			deleted = append(deleted, e.Path)
		} else {
			modified = append(modified, e.Path)
		}
	}
	if diff := cmp.Diff(deleted, []string{"/features/Container:gone"}); diff != "" {
		t.Errorf("deleted (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(modified, []string{"/features/ContainerFactory", "/features/Container:kept"}); diff != "" {
		t.Errorf("modified (-got +want):\n%s", diff)
	}
	if b, _ := os.ReadFile(state); string(b) != `["kept"]` {
		t.Errorf("record %s", b)
	}
}

// TestRunStopsMetricsLoop: Run owns the metrics loop; both end with ctx.
func TestRunStopsMetricsLoop(t *testing.T) {
	before := runtime.NumGoroutine()
	b := &fakeBroker{}
	th := New(b, listOnly{}, Options{Features: []string{"Metrics"}, Sampler: metrics.Reader{}})
	th.onThingResponse(context.Background(), mqtt.Message{Payload: []byte(`{"deviceId":"ns:dev","tenantId":"t"}`)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { th.Run(ctx); close(done) }()
	if err := th.metricsRequest(ctx, "request", json.RawMessage(`{"frequency":"1s"}`)); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	for i := 0; i < 100 && runtime.NumGoroutine() > before; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines left running (before: %d)", n, before)
	}
}
