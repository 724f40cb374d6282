package updatemanager_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/updateapi"
)

// connector plays the local connector: it answers the edge thing request
// and records what the manager sends towards the cloud.
type connector struct {
	t  *testing.T
	c  *mqtt.Client
	mu sync.Mutex
	ms []mqtt.Message
	ch chan struct{}
}

func newConnector(t *testing.T, url string) *connector {
	k := &connector{t: t, ch: make(chan struct{}, 1)}
	k.c = mqtt.New(mqtt.Options{URL: url, ClientID: "connector", CleanSession: true})
	rec := func(_ context.Context, m mqtt.Message) {
		k.mu.Lock()
		k.ms = append(k.ms, m)
		k.mu.Unlock()
		select {
		case k.ch <- struct{}{}:
		default:
		}
	}
	ctx := ctxT(t)
	if err := k.c.Subscribe(ctx, "edge/thing/request", 1, func(ctx context.Context, m mqtt.Message) {
		_ = k.c.Publish(ctx, mqtt.Message{Topic: "edge/thing/response", QoS: 1, Payload: []byte(`{"deviceId":"test.ns:dev1","tenantId":"t1","policyId":"test.ns:dev1"}`)})
	}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"e", "command///res/#"} {
		if err := k.c.Subscribe(ctx, f, 1, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	// Connect returns at CONNACK; the subscriptions go out just after.
	if err := k.c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.c.Close)
	return k
}

func (k *connector) wait(what string, match func(m mqtt.Message, e *ditto.Envelope) bool) *ditto.Envelope {
	k.t.Helper()
	deadline := time.After(waitFor)
	seen := 0
	for {
		k.mu.Lock()
		ms := append([]mqtt.Message(nil), k.ms[seen:]...)
		k.mu.Unlock()
		for _, m := range ms {
			seen++
			e, err := ditto.Parse(m.Payload)
			if err == nil && match(m, e) {
				return e
			}
		}
		select {
		case <-k.ch:
		case <-deadline:
			k.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (k *connector) send(reqID, op, corr string, value any) {
	k.t.Helper()
	v, _ := json.Marshal(value)
	e := &ditto.Envelope{Topic: "test.ns/dev1/things/live/messages/" + op, Path: "/features/UpdateManager/inbox/messages/" + op,
		Headers: ditto.Headers{"correlation-id": corr, "response-required": true}, Value: v}
	b, _ := e.Marshal()
	if err := k.c.Publish(ctxT(k.t), mqtt.Message{Topic: "command///req/" + reqID + "/" + op, QoS: 1, Payload: b}); err != nil {
		k.t.Fatal(err)
	}
}

func feedbackOf(e *ditto.Envelope) (id string, f updateapi.Feedback) {
	var v struct {
		ActivityID string             `json:"activityId"`
		Feedback   updateapi.Feedback `json:"desiredStateFeedback"`
	}
	_ = json.Unmarshal(e.Value, &v)
	return v.ActivityID, v.Feedback
}

func TestThingsFace(t *testing.T) {
	r := newRig(t, "containers")
	k := newConnector(t, r.url)
	cfg := r.config()
	cfg.ThingsEnabled = true
	cfg.OwnerConsentCommands = []string{"DOWNLOAD"}
	startManagerNoWait(t, cfg, r.reboot)

	k.wait("feature activation", func(_ mqtt.Message, e *ditto.Envelope) bool {
		return e.Topic == "test.ns/dev1/things/twin/commands/modify" && e.Path == "/features/UpdateManager" &&
			strings.Contains(string(e.Value), "com.bosch.iot.suite.edge.update:UpdateManager:1.0.0")
	})
	k.wait("initial current state", func(_ mqtt.Message, e *ditto.Envelope) bool {
		return e.Path == "/features/UpdateManager/properties" && strings.Contains(string(e.Value), `"initial-current-state-`)
	})

	k.send("r0", "apply", "c0", map[string]any{"activityId": "x"})
	k.wait("400 without desired state", func(m mqtt.Message, e *ditto.Envelope) bool {
		return m.Topic == "command///res/r0/400" && strings.Contains(string(e.Value), "desired state is missing")
	})
	k.send("r1", "apply", "c1", map[string]any{"activityId": "act-t", "timestamp": 1,
		"desiredState": desired(map[string]map[string]string{"containers": {"a": "1"}})})
	k.wait("204 to apply", func(m mqtt.Message, e *ditto.Envelope) bool {
		return m.Topic == "command///res/r1/204" && e.Headers.CorrelationID() == "c1" && e.Path == "/features/UpdateManager/outbox/messages/apply"
	})
	consent := k.wait("consent request", func(_ mqtt.Message, e *ditto.Envelope) bool {
		return e.Topic == "test.ns/dev1/things/live/messages/consent" && strings.Contains(string(e.Value), `"ownerConsent":{"command":"DOWNLOAD"}`)
	})
	approve := map[string]any{"activityId": "act-t", "timestamp": 2, "ownerConsentFeedback": map[string]string{"status": "APPROVED"}}
	k.send("r2", "consent", "wrong", approve)
	k.wait("400 on correlation mismatch", func(m mqtt.Message, e *ditto.Envelope) bool {
		return m.Topic == "command///res/r2/400" && strings.Contains(string(e.Value), "correlation id mismatch")
	})
	k.send("r3", "consent", consent.Headers.CorrelationID(), approve)
	k.wait("completed feedback", func(_ mqtt.Message, e *ditto.Envelope) bool {
		id, f := feedbackOf(e)
		return e.Topic == "test.ns/dev1/things/live/messages/feedback" && id == "act-t" && f.Status == updateapi.StatusCompleted
	})
	k.send("r4", "refresh", "c4", map[string]any{"activityId": "ref-t"})
	k.wait("refreshed current state", func(_ mqtt.Message, e *ditto.Envelope) bool {
		return e.Path == "/features/UpdateManager/properties" && strings.Contains(string(e.Value), `"activityId":"ref-t"`) &&
			strings.Contains(string(e.Value), `"containers:a"`)
	})
}

func startManagerNoWait(t *testing.T, cfg updatemanagerConfig, rb *fakeReboot) {
	t.Helper()
	s, err := newService(cfg, rb)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}
