package uplink

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
)

// Tracer logs the payload of a handled message at DEBUG when its topic
// starts with one of TRACE_TOPIC_PREFIX's prefixes (upstream's tracing
// middleware). Empty payloads are not traced. JSON is compacted as
// upstream does; where upstream fails the message when the payload is not
// JSON, it is logged as it is and the message carries on.
type Tracer struct {
	Prefixes []string
	Log      *slog.Logger
}

// Trace logs payload if topic is traced.
func (t Tracer) Trace(topic string, payload []byte) {
	if len(t.Prefixes) == 0 || len(payload) == 0 || t.Log == nil {
		return
	}
	for _, p := range t.Prefixes {
		if strings.HasPrefix(topic, p) {
			var b bytes.Buffer
			if json.Compact(&b, payload) != nil {
				b.Reset()
				b.Write(payload)
			}
			t.Log.Debug("trace", "topic", topic, "payload", b.String())
			return
		}
	}
}
