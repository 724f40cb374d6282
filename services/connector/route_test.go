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

// Generic mode is the generic setting, or an AWS IoT Core address whatever
// that setting says (reference §2.5, upstream's plain host name suffix).
func TestGenericMode(t *testing.T) {
	tests := []struct {
		address string
		generic bool
		want    bool
	}{
		{"mqtts://mqtt.bosch-iot-hub.com:8883", false, false},
		{"mqtts://mqtt.bosch-iot-hub.com:8883", true, true},
		{"mqtts://a1b2c3-ats.iot.eu-west-1.amazonaws.com:8883", false, true},
		{"mqtts://a1b2c3-ats.iot.eu-west-1.amazonaws.com:8883", true, true},
		{"ssl://a1b2c3-ats.iot.eu-west-1.amazonaws.com", false, true},
		{"tcp://amazonaws.com:1883", false, true},
		{"tcp://notamazonaws.com:1883", false, true}, // upstream: no dot boundary
		{"tcp://127.0.0.1:1883", false, false},
		{"tcp://amazonaws.com.example.org:1883", false, false},
		{"tcp://example.org:1883/amazonaws.com", false, false}, // the path does not count
		{"tcp://AMAZONAWS.COM:1883", false, false},             // upstream compares as written
		{"", false, false},
		{"%zz", false, false}, // not a URL
		{"%zz", true, true},
	}
	for _, tt := range tests {
		s := Settings{Address: tt.address, Generic: tt.generic}
		if got := s.GenericMode(); got != tt.want {
			t.Errorf("Settings{Address: %q, Generic: %v}.GenericMode() = %v, want %v", tt.address, tt.generic, got, tt.want)
		}
	}
}
