package connector

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestRoutesToCloud(t *testing.T) {
	ts := time.UnixMilli(1700000000123)
	hono := routes{tenant: "T", device: "ns:gw"}
	generic := routes{tenant: "T", device: "ns:gw", generic: true}
	genericPrefixed := routes{tenant: "T", device: "ns:gw", generic: true,
		env: Env{EventsPrefix: "pfx", TelemetryPrefix: "tp", ResponsePrefix: "prefix"}}
	tests := []struct {
		name  string
		r     routes
		topic string
		want  string
	}{
		{"event short", hono, "e", "event/T/ns:gw"},
		{"telemetry device", hono, "t//D2", "telemetry/T/D2"},
		{"response short", hono, "c//ns:gw/s/r1/200", "command//ns:gw/res/r1/200"},
		{"response empty device", hono, "command///res/r1/500", "command///res/r1/500"},
		{"generic own device: trailing slash", generic, "e", "event/T/ns:gw/"},
		{"generic child", generic, "t/T/ns:gw:child/x", "telemetry/T/ns:gw/child/x"},
		{"generic response", genericPrefixed, "c//ns:gw:testDevice/s//204", "prefix/command/T/ns:gw/testDevice/res//204"},
		{"generic event prefix", genericPrefixed, "e", "pfx/event/T/ns:gw/"},
		{"generic telemetry prefix", genericPrefixed, "t", "tp/telemetry/T/ns:gw/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := tt.r.toCloud(tt.topic, []byte(`{"a":1}`), ts)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("toCloud(%q) = %q, want %q", tt.topic, got, tt.want)
			}
		})
	}
	if _, _, err := generic.toCloud("e/T/other:dev", []byte(`{}`), ts); !errors.Is(err, ErrRoute) {
		t.Errorf("foreign device in generic mode: err = %v", err)
	}
	if _, _, err := generic.toCloud("e", []byte(`not json`), ts); !errors.Is(err, ErrRoute) {
		t.Errorf("non-JSON event in generic mode: err = %v", err)
	}
}

func TestGenericEventsGetTimestamp(t *testing.T) {
	r := routes{tenant: "T", device: "ns:gw", generic: true}
	_, p, err := r.toCloud("e", []byte(`{"topic":"x","headers":{"a":"b"},"value":1.50}`), time.UnixMilli(1700000000123))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Headers map[string]any
		Value   json.Number
	}
	dec := json.NewDecoder(bytesReader(p))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Headers["x-timestamp"] != json.Number("1700000000123") || got.Headers["a"] != "b" || got.Value != "1.50" {
		t.Errorf("stamped payload %s", p)
	}
	// Telemetry is not stamped.
	_, p, _ = r.toCloud("t", []byte(`{"a":1}`), time.Now())
	if string(p) != `{"a":1}` {
		t.Errorf("telemetry changed: %s", p)
	}
}

func TestCommandToLocal(t *testing.T) {
	tests := []struct {
		generic     bool
		topic, want string
	}{
		{false, "command///req/r1/do", "command///req/r1/do"},
		{false, "command//ns:gw:c/req/r1/do", "command//ns:gw:c/req/r1/do"},
		{true, "command/T/ns:gw/dev/req/r1/do", "command//ns:gw:dev/req/r1/do"},
		{true, "command/T/ns:gw//req/r1/do", "command///req/r1/do"},
	}
	for _, tt := range tests {
		r := routes{tenant: "T", device: "ns:gw", generic: tt.generic}
		got, err := r.commandToLocal(tt.topic)
		if err != nil || got != tt.want {
			t.Errorf("commandToLocal(%q) = %q, %v; want %q", tt.topic, got, err, tt.want)
		}
	}
}

// Acceptance case 9: ≈ init, ×mul ... up to max, each ±25 %.
func TestBackoffBands(t *testing.T) {
	b := newBackoff(Env{BackoffInit: 60 * time.Second, BackoffMax: 240 * time.Second, BackoffMul: 2})
	for round := range 3 {
		b.reset()
		for i, base := range []float64{60, 120, 240, 240, 240} {
			got := b.next().Seconds()
			if got < base*0.75 || got > base*1.25 {
				t.Errorf("round %d step %d: %.1fs outside %.0fs ±25%%", round, i, got, base)
			}
		}
	}
}

func TestTrackerCounts(t *testing.T) {
	tr := newTracker("connector", "cloud")
	steps := []struct {
		topic, line string
		sub, unsub  []string
	}{
		{sysSubscribeTopic, "1700000000: app1 1 command//ns:gw:c/req/#", []string{"command//ns:gw:c/req/#"}, nil},
		{sysSubscribeTopic, "1700000001: app2 0 c//ns:gw:c/q/#", nil, nil},
		{sysSubscribeTopic, "1700000001: app2 0 telemetry/#", nil, nil},
		{sysSubscribeTopic, "1700000001: cloud 1 command//ns:gw:x/req/#", nil, nil},
		{sysSubscribeTopic, "1700000001: app3 1 command//+/req/#", nil, nil},
		{sysUnsubTopic, "1700000002: app1 command//ns:gw:c/req/#", nil, nil},
		{sysNoticeTopic, "1700000003: Client app2 closed its connection.", nil, []string{"command//ns:gw:c/req/#"}},
		{sysSubscribeTopic, "1700000004: app4 1 command//ns:gw:d/req/#", []string{"command//ns:gw:d/req/#"}, nil},
		{sysNoticeTopic, "1700000005: Socket error on client app4, disconnecting.", nil, []string{"command//ns:gw:d/req/#"}},
		{sysSubscribeTopic, "1700000006: app5 1 command//ns:gw:e/req/#", []string{"command//ns:gw:e/req/#"}, nil},
		{sysNoticeTopic, "1700000007: Client app5 disconnected.", nil, []string{"command//ns:gw:e/req/#"}},
	}
	for i, s := range steps {
		got := tr.handle(s.topic, []byte(s.line))
		if !equal(got.subscribe, s.sub) || !equal(got.unsubscribe, s.unsub) {
			t.Errorf("step %d (%s): got %+v, want sub %v unsub %v", i, s.line, got, s.sub, s.unsub)
		}
	}
	if f := tr.filters(); len(f) != 0 {
		t.Errorf("filters left: %v", f)
	}
}

func FuzzTrackerLines(f *testing.F) {
	f.Add(sysSubscribeTopic, "1700000000: app1 1 command//ns:gw:c/req/#")
	f.Add(sysNoticeTopic, "1700000003: Client app2 closed its connection.")
	f.Add(sysUnsubTopic, "1: a c//x/q/#")
	f.Fuzz(func(t *testing.T, topic, line string) {
		tr := newTracker("connector", "cloud")
		tr.handle(topic, []byte(line))
		for _, fl := range tr.filters() {
			if !(len(fl) > 0) {
				t.Fatal("empty filter tracked")
			}
		}
	})
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
