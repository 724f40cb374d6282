package updateagent_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/store"
	"github.com/kantofw/kanto/services/internal/updateagent"
	"github.com/kantofw/kanto/services/internal/updateagent/updateagenttest"
	"github.com/kantofw/kanto/services/internal/updateapi"
)

type seen struct {
	mu  sync.Mutex
	fb  []updateapi.Feedback
	cs  []updateapi.Envelope
	ids []string
	ch  chan struct{}
}

func (s *seen) add(_ context.Context, m mqtt.Message) {
	e, err := updateapi.ParseEnvelope(m.Payload)
	if err != nil {
		return
	}
	s.mu.Lock()
	if m.Topic == "testupdate/currentstate" {
		s.cs = append(s.cs, *e)
	} else {
		var f updateapi.Feedback
		_ = json.Unmarshal(e.Payload, &f)
		s.fb = append(s.fb, f)
		s.ids = append(s.ids, e.ActivityID)
	}
	s.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

func (s *seen) waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.ch:
		case <-deadline:
			t.Fatalf("timed out; feedback %+v", s.fb)
		}
	}
}

func (s *seen) statuses() []updateapi.Status {
	var out []updateapi.Status
	for _, f := range s.fb {
		out = append(out, f.Status)
	}
	return out
}

func TestAgentProtocol(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &seen{ch: make(chan struct{}, 1)}
	c := mqtt.New(mqtt.Options{URL: b.URL(), ClientID: "test", CleanSession: true})
	for _, f := range []string{"testupdate/desiredstatefeedback", "testupdate/currentstate"} {
		if err := c.Subscribe(ctx, f, 1, s.add); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	// Connect returns at CONNACK; the subscriptions go out just after.
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	db, err := store.Open(filepath.Join(t.TempDir(), "a.db"), "agent", updateagent.Migrations)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	d := updateagenttest.New("test", map[string]string{"x": "1"})
	a := updateagent.New(updateagent.Options{Domain: "test", DB: db, MQTT: mqtt.Options{URL: b.URL(), ClientID: "agent", CleanSession: true}}, d)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// The retained current state comes on connect, with the initial ID.
	s.waitFor(t, func() bool { return len(s.cs) > 0 })
	if id := s.cs[0].ActivityID; len(id) < len("initial-current-state-") || id[:22] != "initial-current-state-" {
		t.Errorf("first current state id %q", id)
	}
	pub := func(topic, id string, payload any) {
		bb, _ := updateapi.NewEnvelope(id, time.Now(), payload)
		if err := c.Publish(ctx, mqtt.Message{Topic: topic, QoS: 1, Payload: bb}); err != nil {
			t.Fatal(err)
		}
	}
	pub("testupdate/currentstate/get", "get-1", nil)
	s.waitFor(t, func() bool {
		return slices.ContainsFunc(s.cs, func(e updateapi.Envelope) bool { return e.ActivityID == "get-1" })
	})

	ds := updateapi.DesiredState{Domains: []updateapi.Domain{{ID: "test", Components: []updateapi.Component{{ID: "x", Version: "2"}}}}}
	pub("testupdate/desiredstate", "a1", ds)
	s.waitFor(t, func() bool { return slices.Contains(s.statuses(), "IDENTIFIED") })
	// A command for another activity is ignored; one in the wrong phase fails.
	pub("testupdate/desiredstate/command", "other", updateapi.DesiredStateCommand{Command: "DOWNLOAD"})
	pub("testupdate/desiredstate/command", "a1", updateapi.DesiredStateCommand{Command: "UPDATE"})
	s.waitFor(t, func() bool { return slices.Contains(s.statuses(), "UPDATE_FAILURE") })
	want := []updateapi.Status{"IDENTIFYING", "IDENTIFIED", "UPDATE_FAILURE"}
	s.mu.Lock()
	got, msg := s.statuses(), s.fb[len(s.fb)-1].Message
	s.mu.Unlock()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if msg != "UPDATE is possible only after status DOWNLOAD_SUCCESS is reported" {
		t.Errorf("message %q", msg)
	}
	// Every feedback carries the full action list with prefixed IDs.
	s.mu.Lock()
	acts := s.fb[len(s.fb)-1].Actions
	s.mu.Unlock()
	if len(acts) != 1 || acts[0].Component.ID != "test:x" || acts[0].Component.Version != "2" {
		t.Errorf("actions %+v", acts)
	}
	// A desired state for another domain is refused.
	pub("testupdate/desiredstate", "a2", updateapi.DesiredState{Domains: []updateapi.Domain{{ID: "other"}}})
	s.waitFor(t, func() bool { return slices.Contains(s.ids, "a2") })
	s.mu.Lock()
	last := s.fb[len(s.fb)-1]
	s.mu.Unlock()
	if last.Status != updateapi.StatusIdentificationFailed {
		t.Errorf("other domain: %+v", last)
	}
	if calls := d.Calls(); len(calls) != 0 {
		t.Errorf("executed %v", calls)
	}
}
