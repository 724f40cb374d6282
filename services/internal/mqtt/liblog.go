package mqtt

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/kantofw/kanto/services/internal/logging"
)

// SetupLibraryLog switches the MQTT library's own log on (MQTT_LOG_LEVEL), as
// upstream: ERROR and CRITICAL always, WARN from level WARN, DEBUG from
// level DEBUG (unknown names mean ERROR). Its lines go to log with
// component=paho and, as upstream's, do not pass the logLevel filter. The
// library's loggers are process-wide; the returned func puts back the
// previous ones. Services do not call it: paho's goroutines may still log
// after Client.Close returns, and the write would race with them.
func SetupLibraryLog(level string, log *slog.Logger) (restore func()) {
	if level == "" {
		return func() {} // nothing changed, nothing to write back
	}
	prev := [4]paho.Logger{paho.ERROR, paho.CRITICAL, paho.WARN, paho.DEBUG}
	restore = func() { paho.ERROR, paho.CRITICAL, paho.WARN, paho.DEBUG = prev[0], prev[1], prev[2], prev[3] }
	h := log.With("component", "paho").Handler()
	lv := logging.ParseLevel(level)
	paho.ERROR = pahoLogger{h, slog.LevelError}
	paho.CRITICAL = pahoLogger{h, slog.LevelError}
	if lv <= slog.LevelWarn {
		paho.WARN = pahoLogger{h, slog.LevelWarn}
	}
	if lv <= slog.LevelDebug {
		paho.DEBUG = pahoLogger{h, slog.LevelDebug}
	}
	return restore
}

// pahoLogger is paho's Logger on a slog handler, bypassing its level check.
type pahoLogger struct {
	h     slog.Handler
	level slog.Level
}

func (l pahoLogger) Println(v ...any) { l.emit(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (l pahoLogger) Printf(format string, v ...any) { l.emit(fmt.Sprintf(format, v...)) }

func (l pahoLogger) emit(msg string) {
	_ = l.h.Handle(context.Background(), slog.NewRecord(time.Now(), l.level, msg, 0))
}
