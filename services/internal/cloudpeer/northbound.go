package cloudpeer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/kantofw/kanto/services/internal/hono"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// Message is one message the back end received from a device.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	At      time.Time
}

// Northbound is the back end's view of the hub: it receives telemetry,
// events and command responses, sends commands, and sees which command
// subscriptions devices hold (from the hub broker's $SYS log).
type Northbound struct {
	c *mqtt.Client

	mu      sync.Mutex
	msgs    []Message
	changed chan struct{}
	subs    map[string]map[string]byte // client -> filter -> qos
	waiters map[string]chan Message    // request id -> response
}

var sysSub = regexp.MustCompile(`^\d+: (\S+) (\d) (\S+)$`)
var sysUnsub = regexp.MustCompile(`^\d+: (\S+) (\S+)$`)

// NewNorthbound attaches the back end to the hub broker (the broker behind the
// adapter, started with $SYS logging to see subscriptions).
func NewNorthbound(ctx context.Context, brokerURL string) (*Northbound, error) {
	n := &Northbound{changed: make(chan struct{}), subs: map[string]map[string]byte{}, waiters: map[string]chan Message{}}
	n.c = mqtt.New(mqtt.Options{URL: brokerURL, ClientID: "northbound-" + rid(), CleanSession: true, AutoReconnect: true,
		MaxReconnectInterval: 200 * time.Millisecond, QueueDepth: 1 << 16})
	if err := n.c.Connect(ctx); err != nil {
		return nil, err
	}
	for _, f := range []string{"telemetry/#", "event/#"} {
		if err := n.c.Subscribe(ctx, f, 1, n.onData); err != nil {
			return nil, err
		}
	}
	if err := n.c.Subscribe(ctx, "command//+/res/#", 1, n.onResponse); err != nil {
		return nil, err
	}
	if err := n.c.Subscribe(ctx, "$SYS/broker/log/M/#", 0, n.onSys); err != nil {
		return nil, err
	}
	return n, nil
}

// Close disconnects.
func (n *Northbound) Close() { n.c.Close() }

func (n *Northbound) record(m mqtt.Message) {
	n.mu.Lock()
	n.msgs = append(n.msgs, Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, At: time.Now()})
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
}

func (n *Northbound) onData(_ context.Context, m mqtt.Message) { n.record(m) }

func (n *Northbound) onResponse(_ context.Context, m mqtt.Message) {
	n.record(m)
	c, err := hono.ParseCommand(m.Topic)
	if err != nil {
		return
	}
	n.mu.Lock()
	w := n.waiters[c.RequestID()]
	delete(n.waiters, c.RequestID())
	n.mu.Unlock()
	if w != nil {
		w <- Message{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, At: time.Now()}
	}
}

func (n *Northbound) onSys(_ context.Context, m mqtt.Message) {
	line := strings.TrimSpace(string(m.Payload))
	n.mu.Lock()
	defer func() {
		close(n.changed)
		n.changed = make(chan struct{})
		n.mu.Unlock()
	}()
	switch {
	case strings.HasSuffix(m.Topic, "/unsubscribe"):
		if g := sysUnsub.FindStringSubmatch(line); g != nil {
			delete(n.subs[g[1]], g[2])
		}
	case strings.HasSuffix(m.Topic, "/subscribe"):
		if g := sysSub.FindStringSubmatch(line); g != nil {
			if n.subs[g[1]] == nil {
				n.subs[g[1]] = map[string]byte{}
			}
			n.subs[g[1]][g[3]] = g[2][0] - '0'
		}
	}
}

// Messages returns everything received so far whose topic matches filter.
func (n *Northbound) Messages(filter string) []Message {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Message
	for _, m := range n.msgs {
		if mqtt.Match(filter, m.Topic) {
			out = append(out, m)
		}
	}
	return out
}

// Await waits until at least count messages match filter.
func (n *Northbound) Await(ctx context.Context, filter string, count int) ([]Message, error) {
	for {
		n.mu.Lock()
		ch := n.changed
		n.mu.Unlock()
		if got := n.Messages(filter); len(got) >= count {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return n.Messages(filter), fmt.Errorf("awaiting %d messages on %s: got %d: %w", count, filter, len(n.Messages(filter)), ctx.Err())
		case <-ch:
		}
	}
}

// Subscription returns the QoS of a filter a hub client subscribed to
// (any client when client is ""), and whether it is subscribed.
func (n *Northbound) Subscription(client, filter string) (byte, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, fs := range n.subs {
		if client != "" && id != client {
			continue
		}
		if q, ok := fs[filter]; ok {
			return q, true
		}
	}
	return 0, false
}

// AwaitSubscription waits until filter is (or, with want false, is no
// longer) subscribed by any hub client.
func (n *Northbound) AwaitSubscription(ctx context.Context, filter string, want bool) (byte, error) {
	for {
		n.mu.Lock()
		ch := n.changed
		n.mu.Unlock()
		q, ok := n.Subscription("", filter)
		if ok == want {
			return q, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("awaiting subscription %s=%v: %w", filter, want, ctx.Err())
		case <-ch:
		}
	}
}

// Command sends a command to device (as Hono's adapter would deliver it to
// a gateway) and waits for the response. It returns the response topic's
// status segment and payload.
func (n *Northbound) Command(ctx context.Context, device, subject string, payload []byte) (status string, resp []byte, err error) {
	id := rid()
	w := make(chan Message, 1)
	n.mu.Lock()
	n.waiters[id] = w
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.waiters, id)
		n.mu.Unlock()
	}()
	topic := "command//" + device + "/req/" + id + "/" + subject
	if err := n.c.Publish(ctx, mqtt.Message{Topic: topic, Payload: payload, QoS: 0}); err != nil {
		return "", nil, err
	}
	select {
	case <-ctx.Done():
		return "", nil, fmt.Errorf("command %s: no response: %w", topic, ctx.Err())
	case m := <-w:
		c, _ := hono.ParseCommand(m.Topic)
		_, st, _ := strings.Cut(c.Rest, "/")
		return st, m.Payload, nil
	}
}

// Send publishes a raw message on the hub (for malformed-command tests).
func (n *Northbound) Send(ctx context.Context, topic string, payload []byte) error {
	return n.c.Publish(ctx, mqtt.Message{Topic: topic, Payload: payload})
}

func rid() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
