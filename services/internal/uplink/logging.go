package uplink

import (
	"io"
	"log/slog"

	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// StartLogging opens a connector's log (logging config c, service name)
// and routes the MQTT library's own log into it at e.MQTTLogLevel. The
// closer ends the log file; the library's loggers are not put back: paho's
// goroutines may still log after Client.Close returns, and the process
// ends right after the service anyway.
func StartLogging(c logging.Config, service string, e Env, stderr io.Writer) (*slog.Logger, io.Closer, error) {
	log, closer, err := logging.New(c, service, stderr)
	if err != nil {
		return nil, nil, err
	}
	_ = mqtt.SetupLibraryLog(e.MQTTLogLevel, log)
	return log, closer, nil
}
