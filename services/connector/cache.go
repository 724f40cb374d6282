package connector

import (
	"sync"
	"time"
)

// correlations remembers the correlation ids of commands sent to local
// apps, so only the first response to a known command goes to the cloud.
type correlations struct {
	now func() time.Time

	mu      sync.Mutex
	entries map[string]time.Time // id -> expiry
}

func newCorrelations(now func() time.Time) *correlations {
	return &correlations{now: now, entries: map[string]time.Time{}}
}

// add keeps id for ttl. A zero ttl keeps nothing, as upstream.
func (c *correlations) add(id string, ttl time.Duration) {
	if id == "" || ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.entries) > 1024 {
		for k, exp := range c.entries {
			if !exp.After(now) {
				delete(c.entries, k)
			}
		}
	}
	c.entries[id] = now.Add(ttl)
}

// take reports whether id is known and unexpired, and forgets it.
func (c *correlations) take(id string) bool {
	if id == "" {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.entries[id]
	delete(c.entries, id)
	return ok && exp.After(c.now())
}

func (c *correlations) clear() {
	c.mu.Lock()
	c.entries = map[string]time.Time{}
	c.mu.Unlock()
}
