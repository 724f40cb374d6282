// Package subtrack follows local command subscriptions through Mosquitto's
// $SYS log (log_dest topic; log_type subscribe, unsubscribe and notice;
// numeric timestamps), so a connector can hold the same device command
// subscriptions on the hub while at least one local app listens: Hono then
// treats the child device as connected (gateway auto-provisioning, TTD).
// The suite connector and local-digital-twins use it.
package subtrack

import (
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/kantofw/kanto/services/internal/hono"
)

// Topics of the $SYS log.
const (
	Filter         = "$SYS/broker/log/#"
	subscribeTopic = "$SYS/broker/log/M/subscribe"
	unsubTopic     = "$SYS/broker/log/M/unsubscribe"
	noticeTopic    = "$SYS/broker/log/N"
)

var (
	subscribeLine = regexp.MustCompile(`^\d+: (\S+) (\d) (\S+)$`)
	unsubLine     = regexp.MustCompile(`^\d+: (\S+) (\S+)$`)
	disconnects   = []*regexp.Regexp{
		regexp.MustCompile(`^\d+: Client (\S+) disconnected\.?`),
		regexp.MustCompile(`^\d+: Socket error on client (\S+), disconnecting\.?`),
		regexp.MustCompile(`^\d+: Client (\S+) closed its connection\.?`),
	}
)

// Change is what the hub must do after a log line.
type Change struct {
	Subscribe, Unsubscribe []string
}

// Tracker counts forwardable command subscriptions per normalised filter
// across local clients. It is safe for concurrent use.
type Tracker struct {
	ignore map[string]bool // the service's own client ids

	mu      sync.Mutex
	clients map[string]map[string]bool // client -> normalised filters
	counts  map[string]int
}

// New returns a tracker that ignores the given (own) client ids.
func New(ownIDs ...string) *Tracker {
	t := &Tracker{ignore: map[string]bool{}, clients: map[string]map[string]bool{}, counts: map[string]int{}}
	for _, id := range ownIDs {
		t.ignore[id] = true
	}
	return t
}

// Handle interprets one $SYS log message.
func (t *Tracker) Handle(topic string, payload []byte) Change {
	line := strings.TrimSpace(string(payload))
	switch topic {
	case subscribeTopic:
		if m := subscribeLine.FindStringSubmatch(line); m != nil {
			return t.add(m[1], m[3])
		}
	case unsubTopic:
		if m := unsubLine.FindStringSubmatch(line); m != nil {
			return t.remove(m[1], m[2])
		}
	case noticeTopic:
		for _, re := range disconnects {
			if m := re.FindStringSubmatch(line); m != nil {
				return t.drop(m[1])
			}
		}
	}
	return Change{}
}

// forwardable normalises (c|command)//<dev>/(q|req)/# filters; filters with
// a /+/ level are covered by the gateway wildcard already.
func forwardable(filter string) (string, bool) {
	if !hono.IsCommandRequestFilter(filter) {
		return "", false
	}
	n := hono.NormalizeFilter(filter)
	if strings.Contains(n, "/+/") {
		return "", false
	}
	return n, true
}

func (t *Tracker) add(client, filter string) Change {
	n, ok := forwardable(filter)
	if !ok || t.ignore[client] {
		return Change{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fs := t.clients[client]
	if fs == nil {
		fs = map[string]bool{}
		t.clients[client] = fs
	}
	if fs[n] {
		return Change{}
	}
	fs[n] = true
	t.counts[n]++
	if t.counts[n] == 1 {
		return Change{Subscribe: []string{n}}
	}
	return Change{}
}

func (t *Tracker) remove(client, filter string) Change {
	n, ok := forwardable(filter)
	if !ok || t.ignore[client] {
		return Change{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.clients[client][n] {
		return Change{}
	}
	delete(t.clients[client], n)
	return t.release(n)
}

func (t *Tracker) release(n string) Change {
	t.counts[n]--
	if t.counts[n] <= 0 {
		delete(t.counts, n)
		return Change{Unsubscribe: []string{n}}
	}
	return Change{}
}

func (t *Tracker) drop(client string) Change {
	if t.ignore[client] {
		return Change{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var c Change
	for n := range t.clients[client] {
		c.Unsubscribe = append(c.Unsubscribe, t.release(n).Unsubscribe...)
	}
	delete(t.clients, client)
	slices.Sort(c.Unsubscribe)
	return c
}

// Filters lists what the hub must be subscribed to now.
func (t *Tracker) Filters() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.counts))
	for f := range t.counts {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}
