package uplink

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestTrace(t *testing.T) {
	tests := []struct {
		name     string
		prefixes []string
		topic    string
		payload  string
		want     string // "" = nothing logged
	}{
		{"unset", nil, "e", `{"a":1}`, ""},
		{"match, JSON compacted", []string{"t", "e"}, "event/T/D", "{ \"a\" : 1 }", `msg=trace topic=event/T/D payload="{\"a\":1}"`},
		{"no match", []string{"telemetry"}, "event/T/D", `{"a":1}`, ""},
		{"empty payload", []string{"e"}, "e", "", ""},
		{"not JSON, logged as is", []string{"command//"}, "command///req/r/do", "not json", `payload="not json"`},
		{"empty prefix matches all", []string{"x", ""}, "edge/thing/request", `{}`, `topic=edge/thing/request payload={}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
			Tracer{Prefixes: tt.prefixes, Log: log}.Trace(tt.topic, []byte(tt.payload))
			got := out.String()
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("logged %q, want it to contain %q", got, tt.want)
			}
		})
	}
}
