package connector

import (
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/kantofw/kanto/services/internal/hono"
)

// Mosquitto $SYS log lines the tracker reads (log_type subscribe,
// unsubscribe and notice, log_dest topic, default numeric timestamps).
const (
	sysLogFilter      = "$SYS/broker/log/#"
	sysSubscribeTopic = "$SYS/broker/log/M/subscribe"
	sysUnsubTopic     = "$SYS/broker/log/M/unsubscribe"
	sysNoticeTopic    = "$SYS/broker/log/N"
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

// tracker counts local command subscriptions per normalised filter across
// clients, so the hub is subscribed while at least one local app listens.
type tracker struct {
	ignore map[string]bool // the connector's own client ids

	mu      sync.Mutex
	clients map[string]map[string]bool // client -> normalised filters
	counts  map[string]int
}

func newTracker(ownIDs ...string) *tracker {
	t := &tracker{ignore: map[string]bool{}, clients: map[string]map[string]bool{}, counts: map[string]int{}}
	for _, id := range ownIDs {
		t.ignore[id] = true
	}
	return t
}

// change is what the hub must do after a log line.
type change struct {
	subscribe, unsubscribe []string
}

// handle interprets one $SYS log message.
func (t *tracker) handle(topic string, payload []byte) change {
	line := strings.TrimSpace(string(payload))
	switch topic {
	case sysSubscribeTopic:
		if m := subscribeLine.FindStringSubmatch(line); m != nil {
			return t.add(m[1], m[3])
		}
	case sysUnsubTopic:
		if m := unsubLine.FindStringSubmatch(line); m != nil {
			return t.remove(m[1], m[2])
		}
	case sysNoticeTopic:
		for _, re := range disconnects {
			if m := re.FindStringSubmatch(line); m != nil {
				return t.drop(m[1])
			}
		}
	}
	return change{}
}

func forwardable(filter string) (string, bool) {
	if !hono.IsCommandRequestFilter(filter) {
		return "", false
	}
	n := hono.NormalizeFilter(filter)
	if strings.Contains(n, "/+/") {
		return "", false // already covered by the gateway wildcard
	}
	return n, true
}

func (t *tracker) add(client, filter string) change {
	n, ok := forwardable(filter)
	if !ok || t.ignore[client] {
		return change{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fs := t.clients[client]
	if fs == nil {
		fs = map[string]bool{}
		t.clients[client] = fs
	}
	if fs[n] {
		return change{}
	}
	fs[n] = true
	t.counts[n]++
	if t.counts[n] == 1 {
		return change{subscribe: []string{n}}
	}
	return change{}
}

func (t *tracker) remove(client, filter string) change {
	n, ok := forwardable(filter)
	if !ok || t.ignore[client] {
		return change{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.clients[client][n] {
		return change{}
	}
	delete(t.clients[client], n)
	return t.release(n)
}

func (t *tracker) release(n string) change {
	t.counts[n]--
	if t.counts[n] <= 0 {
		delete(t.counts, n)
		return change{unsubscribe: []string{n}}
	}
	return change{}
}

func (t *tracker) drop(client string) change {
	if t.ignore[client] {
		return change{}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var c change
	for n := range t.clients[client] {
		c.unsubscribe = append(c.unsubscribe, t.release(n).unsubscribe...)
	}
	delete(t.clients, client)
	sort.Strings(c.unsubscribe)
	return c
}

// filters lists the filters the hub must be subscribed to now.
func (t *tracker) filters() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.counts))
	for f := range t.counts {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}
