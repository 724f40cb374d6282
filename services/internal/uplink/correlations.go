package uplink

import (
	"sync"
	"time"
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
