package fileupload

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

const (
	thingID = "org.example:edge-1"
	tenant  = "t1"
)

// cloud plays the connector (edge thing identity) and the backend
// (operations, request and status events) on a real Mosquitto.
type cloud struct {
	t  *testing.T
	c  *mqtt.Client
	mu sync.Mutex
	// events published by the service on topic "e", parsed.
	events  []*ditto.Envelope
	replies map[string]*ditto.Envelope // by request id
	wake    chan struct{}
	reqN    int
}

func startCloud(t *testing.T, b *mosquittotest.Broker) *cloud {
	return startCloudWith(t, mqtt.Options{URL: b.URL(), ClientID: "cloud", CleanSession: true})
}

func startCloudWith(t *testing.T, o mqtt.Options) *cloud {
	cl := &cloud{t: t, replies: map[string]*ditto.Envelope{}, wake: make(chan struct{}, 1)}
	cl.c = mqtt.New(o)
	ctx := ctxT(t)
	must(t, cl.c.Subscribe(ctx, TopicThingRequest, 1, func(ctx context.Context, m mqtt.Message) {
		resp := fmt.Sprintf(`{"deviceId":%q,"tenantId":%q,"policyId":"p"}`, thingID, tenant)
		_ = cl.c.Publish(ctx, mqtt.Message{Topic: TopicThingResponse, Payload: []byte(resp), QoS: 1})
	}))
	must(t, cl.c.Subscribe(ctx, "e", 1, func(_ context.Context, m mqtt.Message) {
		env, err := ditto.Parse(m.Payload)
		if err != nil {
			t.Errorf("service sent a bad envelope: %v: %s", err, m.Payload)
			return
		}
		cl.add(func() { cl.events = append(cl.events, env) })
	}))
	must(t, cl.c.Subscribe(ctx, "command///res/#", 1, func(_ context.Context, m mqtt.Message) {
		env, err := ditto.Parse(m.Payload)
		if err != nil {
			t.Errorf("service sent a bad reply: %v", err)
			return
		}
		seg := strings.Split(m.Topic, "/")
		if fmt.Sprint(env.Status) != seg[5] {
			t.Errorf("reply topic %s, envelope status %d", m.Topic, env.Status)
		}
		cl.add(func() { cl.replies[seg[4]] = env })
	}))
	must(t, cl.c.Connect(ctx))
	t.Cleanup(cl.c.Close)
	return cl
}

func (cl *cloud) add(f func()) {
	cl.mu.Lock()
	f()
	cl.mu.Unlock()
	select {
	case cl.wake <- struct{}{}:
	default:
	}
}

// waitFor polls cond (under the lock) until it holds or 60 s pass.
func (cl *cloud) waitFor(what string, cond func() bool) {
	cl.t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		cl.mu.Lock()
		ok := cond()
		cl.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-cl.wake:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			cl.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// op sends an inbox operation and returns the reply (nil when
// responseRequired is false).
func (cl *cloud) op(name string, value string, responseRequired bool) *ditto.Envelope {
	cl.t.Helper()
	cl.mu.Lock()
	cl.reqN++
	reqID := fmt.Sprintf("r%d", cl.reqN)
	cl.mu.Unlock()
	env := map[string]any{
		"topic":   "org.example/edge-1/things/live/messages/" + name,
		"headers": map[string]any{"correlation-id": "c-" + reqID, "response-required": responseRequired, "content-type": "application/json"},
		"path":    "/features/AutoUploadable/inbox/messages/" + name,
	}
	data, err := json.Marshal(env)
	must(cl.t, err)
	if value != "" {
		// Spliced in as text so malformed values reach the service as is.
		data = append(append(append(data[:len(data)-1:len(data)-1], `,"value":`...), value...), '}')
	}
	must(cl.t, cl.c.Publish(ctxT(cl.t), mqtt.Message{Topic: "command///req/" + reqID + "/" + name, Payload: data, QoS: 1}))
	if !responseRequired {
		return nil
	}
	var r *ditto.Envelope
	cl.waitFor("reply to "+name, func() bool { r = cl.replies[reqID]; return r != nil })
	if got := r.Headers.CorrelationID(); got != "c-"+reqID {
		cl.t.Errorf("reply correlation-id %q", got)
	}
	if want := "/features/AutoUploadable/outbox/messages/" + name; r.Path != want {
		cl.t.Errorf("reply path %q, want %q", r.Path, want)
	}
	return r
}

// requests returns the outbox request messages so far.
func (cl *cloud) requestsLocked() []request {
	var out []request
	for _, e := range cl.events {
		if strings.HasSuffix(e.Path, "/outbox/messages/request") {
			var r request
			_ = json.Unmarshal(e.Value, &r)
			r.ReplyTo = e.Headers.ReplyTo()
			out = append(out, r)
		}
	}
	return out
}

type request struct {
	CorrelationID string            `json:"correlationId"`
	Options       map[string]string `json:"options"`
	ReplyTo       string
}

type status struct {
	CorrelationID string            `json:"correlationId"`
	State         string            `json:"state"`
	StartTime     string            `json:"startTime"`
	EndTime       string            `json:"endTime"`
	StatusCode    string            `json:"statusCode"`
	Message       string            `json:"message"`
	Progress      int               `json:"progress"`
	Info          map[string]string `json:"info"`
	Bytes         int64             `json:"bytes"`
	Total         int64             `json:"total"`
}

// statusesLocked returns the lastUpload values of id in order.
func (cl *cloud) statusesLocked(id string) []status {
	var out []status
	for _, e := range cl.events {
		if e.Path == "/features/AutoUploadable/properties/lastUpload" {
			var s status
			if err := json.Unmarshal(e.Value, &s); err != nil {
				cl.t.Errorf("lastUpload %s: %v", e.Value, err)
			}
			if s.CorrelationID == id {
				out = append(out, s)
			}
		}
	}
	return out
}

// final waits for a terminal status of id and returns all statuses.
func (cl *cloud) final(id string) []status {
	cl.t.Helper()
	var ss []status
	cl.waitFor("final status of "+id, func() bool {
		ss = cl.statusesLocked(id)
		if len(ss) == 0 {
			return false
		}
		switch ss[len(ss)-1].State {
		case "SUCCESS", "FAILED", "CANCELED":
			return true
		}
		return false
	})
	return ss
}

// startService runs the service against the broker until the test ends.
func startService(t *testing.T, b *mosquittotest.Broker, cfg Config) *Service {
	t.Helper()
	cfg.Broker = b.URL()
	return startServiceAt(t, cfg)
}

// startServiceAt runs the service against cfg.Broker until the test ends.
func startServiceAt(t *testing.T, cfg Config) *Service {
	t.Helper()
	cfg.LogFile = ""
	s, err := New(cfg, logging.Discard())
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// autoLocked returns the last autoUpload value as compact JSON.
func (cl *cloud) autoLocked() string {
	last := ""
	for _, e := range cl.events {
		switch e.Path {
		case "/features/AutoUploadable/properties/autoUpload":
			last = string(e.Value)
		case "/features/AutoUploadable":
			var f struct {
				Properties struct {
					AutoUpload json.RawMessage `json:"autoUpload"`
				} `json:"properties"`
			}
			_ = json.Unmarshal(e.Value, &f)
			last = string(f.Properties.AutoUpload)
		}
	}
	return last
}

// newAuthServer accepts uploads only with "Authorization: Bearer good".
func newAuthServer(t *testing.T) string {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good" {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}
