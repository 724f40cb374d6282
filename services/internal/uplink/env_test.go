package uplink

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadEnvTraceAndMQTTLog(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		prefixes []string
		level    string
	}{
		{"unset", nil, nil, ""},
		{"one prefix", map[string]string{"TRACE_TOPIC_PREFIX": "event/"}, []string{"event/"}, ""},
		{"several, kept as written", map[string]string{"TRACE_TOPIC_PREFIX": "e,command//, t"},
			[]string{"e", "command//", " t"}, ""},
		{"empty item (matches all, as upstream)", map[string]string{"TRACE_TOPIC_PREFIX": "e,"}, []string{"e", ""}, ""},
		{"paho level", map[string]string{"MQTT_LOG_LEVEL": "debug"}, nil, "debug"},
		{"both", map[string]string{"TRACE_TOPIC_PREFIX": "t", "MQTT_LOG_LEVEL": "WARN"}, []string{"t"}, "WARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ReadEnv(func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(e.TracePrefixes, tt.prefixes); diff != "" {
				t.Errorf("TracePrefixes (-got +want):\n%s", diff)
			}
			if e.MQTTLogLevel != tt.level {
				t.Errorf("MQTTLogLevel = %q, want %q", e.MQTTLogLevel, tt.level)
			}
		})
	}
}
