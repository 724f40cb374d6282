package uplink

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/hono"
)

// Why a local command response is not forwarded (TakeResponse).
var (
	ErrResponseNotEnvelope = errors.New("command response dropped: not a Ditto envelope")
	ErrResponseUnknown     = errors.New("command response dropped: no pending command with this correlation id")
)

// Correlations remembers the correlation ids of commands handed to local
// apps, so only the first response to a known command goes to the cloud.
// It is safe for concurrent use.
type Correlations struct {
	mu      sync.Mutex
	entries map[string]time.Time // id -> expiry
}

// Add keeps id for ttl. A zero ttl keeps nothing, as upstream.
func (c *Correlations) Add(id string, ttl time.Duration) {
	if id == "" || ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]time.Time{}
	}
	now := time.Now()
	if len(c.entries) > 1024 {
		for k, exp := range c.entries {
			if !exp.After(now) {
				delete(c.entries, k)
			}
		}
	}
	c.entries[id] = now.Add(ttl)
}

// Take reports whether id is known and unexpired, and forgets it.
func (c *Correlations) Take(id string) bool {
	if id == "" {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.entries[id]
	delete(c.entries, id)
	return ok && exp.After(time.Now())
}

// Clear forgets everything (a new cloud session).
func (c *Correlations) Clear() {
	c.mu.Lock()
	c.entries = nil
	c.mu.Unlock()
}

// TakeResponse decides on a local message: a command response goes to the
// cloud only when it answers a pending command, which it then takes.
// Anything else (events, telemetry) passes with nil.
func (c *Correlations) TakeResponse(topic string, payload []byte) error {
	cmd, err := hono.ParseCommand(topic)
	if err != nil || !cmd.Response {
		return nil
	}
	env, err := ditto.Parse(payload)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrResponseNotEnvelope, err)
	}
	if id := env.Headers.CorrelationID(); !c.Take(id) {
		return fmt.Errorf("%w %q", ErrResponseUnknown, id)
	}
	return nil
}
