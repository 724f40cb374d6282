package connector

import "github.com/kantofw/kanto/services/internal/uplink"

// trace logs a handled message's payload when TRACE_TOPIC_PREFIX asks for
// its topic (uplink.Tracer).
func (c *Connector) trace(topic string, payload []byte) {
	uplink.Tracer{Prefixes: c.o.Env.TracePrefixes, Log: c.log}.Trace(topic, payload)
}
