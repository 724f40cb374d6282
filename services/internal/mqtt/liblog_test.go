package mqtt

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func TestSetupMQTTLog(t *testing.T) {
	tests := []struct {
		level     string
		wired     []string // of ERROR, CRITICAL, WARN, DEBUG
		unchanged []string
	}{
		{"", nil, []string{"ERROR", "CRITICAL", "WARN", "DEBUG"}},
		{"ERROR", []string{"ERROR", "CRITICAL"}, []string{"WARN", "DEBUG"}},
		{"bogus", []string{"ERROR", "CRITICAL"}, []string{"WARN", "DEBUG"}},
		{"warn", []string{"ERROR", "CRITICAL", "WARN"}, []string{"DEBUG"}},
		{"INFO", []string{"ERROR", "CRITICAL", "WARN"}, []string{"DEBUG"}},
		{"DEBUG", []string{"ERROR", "CRITICAL", "WARN", "DEBUG"}, nil},
		{"TRACE", []string{"ERROR", "CRITICAL", "WARN", "DEBUG"}, nil},
	}
	loggers := func() map[string]paho.Logger {
		return map[string]paho.Logger{"ERROR": paho.ERROR, "CRITICAL": paho.CRITICAL, "WARN": paho.WARN, "DEBUG": paho.DEBUG}
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			before := loggers()
			var out bytes.Buffer
			// The service logs at INFO: paho's lines pass anyway, as upstream's.
			log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
			restore := SetupLibraryLog(tt.level, log)
			now := loggers()
			for _, name := range tt.wired {
				if _, ok := now[name].(pahoLogger); !ok {
					t.Errorf("paho.%s not wired", name)
					continue
				}
				out.Reset()
				now[name].Printf("hello %d", 1)
				now[name].Println("bye", 2)
				want := "level=" + map[string]string{"CRITICAL": "ERROR"}[name]
				if want == "level=" {
					want += name
				}
				if s := out.String(); !strings.Contains(s, want+` msg="hello 1" component=paho`) ||
					!strings.Contains(s, want+` msg="bye 2" component=paho`) {
					t.Errorf("paho.%s wrote %q", name, s)
				}
			}
			for _, name := range tt.unchanged {
				if now[name] != before[name] {
					t.Errorf("paho.%s changed", name)
				}
			}
			restore()
			for name, l := range loggers() {
				if l != before[name] {
					t.Errorf("paho.%s not restored", name)
				}
			}
		})
	}
}
