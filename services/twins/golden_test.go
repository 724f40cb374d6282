package twins

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/uplink"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/commands")

// recorder is the local side of a service under test: it keeps what the
// service publishes locally.
type recorder struct {
	mu   sync.Mutex
	msgs []mqtt.Message
}

func (r *recorder) Publish(_ context.Context, m mqtt.Message) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	return nil
}

func (r *recorder) take() []mqtt.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.msgs
	r.msgs = nil
	return out
}

var fixedNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// newOffline is a service with a store and a recorder, no brokers: twin
// commands are handled and answered, nothing is forwarded.
func newOffline(t testing.TB, auto bool) (*Service, *recorder) {
	t.Helper()
	st := Defaults()
	st.DeviceID, st.TenantID, st.AutoProvisioning = "ns:dev", "T", auto
	s := New(Options{Settings: st, Env: uplink.Env{PublishAckTimeout: time.Second}, Now: func() time.Time { return fixedNow }})
	var err error
	s.things, err = openStore(filepath.Join(t.TempDir(), "things.db"), st.DeviceID, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.things.close() })
	rec := &recorder{}
	s.out = rec
	return s, rec
}

// step is one local twin command and what the service published for it.
type step struct {
	Topic   string          `json:"topic"`
	Request json.RawMessage `json:"request"`
	Handled bool            `json:"handled"` // false: forwarded unchanged, not applied
	Out     []output        `json:"out"`
}

type output struct {
	Topic   string          `json:"topic"`
	Payload json.RawMessage `json:"payload"`
}

type golden struct {
	Auto  bool   `json:"autoProvisioning"`
	Steps []step `json:"steps"`
}

// run feeds a golden case's requests to a fresh service.
func (g *golden) run(t testing.TB) []step {
	s, rec := newOffline(t, g.Auto)
	var got []step
	for _, st := range g.Steps {
		handled := s.handleRaw(context.Background(), st.Request)
		out := []output{}
		for _, m := range rec.take() {
			out = append(out, output{Topic: m.Topic, Payload: indent(m.Payload)})
		}
		got = append(got, step{Topic: st.Topic, Request: st.Request, Handled: handled, Out: out})
	}
	return got
}

// handleRaw is onLocal's twin path for a raw payload on an event topic.
func (s *Service) handleRaw(ctx context.Context, payload []byte) bool {
	env, err := ditto.Parse(payload)
	if err != nil {
		return true // dropped
	}
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil || t.Group != "things" || t.Channel != "twin" || t.Criterion != "commands" {
		return false
	}
	return s.handleTwin(ctx, env, t)
}

func indent(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if json.Indent(&buf, b, "", "  ") != nil {
		return b
	}
	return buf.Bytes()
}

func TestGoldenCommands(t *testing.T) {
	files, _ := filepath.Glob("testdata/commands/*.json")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var g golden
			if err := json.Unmarshal(data, &g); err != nil {
				t.Fatal(err)
			}
			got := g.run(t)
			if *update {
				g.Steps = got
				out, _ := json.MarshalIndent(&g, "", "  ")
				if err := os.WriteFile(f, append(out, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			norm := func(v any) any {
				b, _ := json.Marshal(v)
				var x any
				_ = json.Unmarshal(b, &x)
				return x
			}
			if diff := cmp.Diff(norm(g.Steps), norm(got)); diff != "" {
				t.Errorf("-want +got:\n%s", diff)
			}
		})
	}
}
