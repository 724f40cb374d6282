package mqtt

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// subscription owns a goroutine that runs its handler in arrival order.
type subscription struct {
	filter string
	qos    byte
	h      Handler
	hd     DeferredHandler
	also   []string // more filters served by this subscription
	queue  chan delivery
	done   chan struct{}
	once   sync.Once
}

// delivery is a message on its way to one handler; ack runs once every
// handler that matched has returned.
type delivery struct {
	m   Message
	ack *ackCounter
}

type ackCounter struct {
	mu   sync.Mutex
	left int
	ack  func()
}

func (a *ackCounter) done() {
	a.mu.Lock()
	a.left--
	fire := a.left == 0
	a.mu.Unlock()
	if fire {
		a.ack()
	}
}

func (s *subscription) close() { s.once.Do(func() { close(s.done) }) }

// DeferredHandler receives a message and a function that acknowledges it.
// Calls still come in arrival order, but the acknowledgement may come later
// (for example after a batch of messages was written to disk); until then
// the broker keeps the message in flight for the session.
type DeferredHandler func(ctx context.Context, m Message, ack func())

// SubscribeDeferred is Subscribe with a handler that acknowledges itself.
// Several filters given together share one goroutine, so their messages
// reach h (and are acknowledged) in exactly the order the broker sent them.
func (c *Client) SubscribeDeferred(ctx context.Context, filters []string, qos byte, h DeferredHandler) error {
	if len(filters) == 0 {
		return nil
	}
	s := &subscription{filter: filters[0], qos: qos, hd: h, also: filters[1:]}
	return c.subscribe(ctx, s)
}

// Subscribe adds filter to the table (replacing an earlier handler for the
// same filter) and subscribes now if connected. The subscription is sent
// again on every reconnect.
func (c *Client) Subscribe(ctx context.Context, filter string, qos byte, h Handler) error {
	return c.subscribe(ctx, &subscription{filter: filter, qos: qos, h: h})
}

func (c *Client) subscribe(ctx context.Context, s *subscription) error {
	filter, qos := s.filter, s.qos
	s.queue = make(chan delivery, c.o.QueueDepth)
	s.done = make(chan struct{})
	c.mu.Lock()
	for _, f := range append([]string{filter}, s.also...) {
		if old := c.subs[f]; old != nil && old != s {
			old.close()
		}
		c.subs[f] = s
	}
	c.mu.Unlock()
	c.wg.Add(1)
	// Owned by the client; exits on Unsubscribe, replacement or Close.
	go func() {
		defer c.wg.Done()
		c.run(s)
	}()
	if !c.pc.IsConnectionOpen() {
		return nil
	}
	filters := map[string]byte{filter: qos}
	for _, f := range s.also {
		filters[f] = qos
	}
	tok := c.pc.SubscribeMultiple(filters, nil)
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unsubscribe removes filters from the table and from the broker.
func (c *Client) Unsubscribe(ctx context.Context, filters ...string) error {
	c.mu.Lock()
	for _, f := range filters {
		if s := c.subs[f]; s != nil {
			s.close()
			delete(c.subs, f)
		}
	}
	c.mu.Unlock()
	if !c.pc.IsConnectionOpen() {
		return nil
	}
	tok := c.pc.Unsubscribe(filters...)
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) run(s *subscription) {
	for {
		select {
		case <-s.done:
			return
		case d := <-s.queue:
			if s.hd != nil {
				s.hd(c.ctx, d.m, d.ack.done)
				continue
			}
			s.h(c.ctx, d.m)
			d.ack.done()
		}
	}
}

// dispatch is paho's default handler: every message lands here, so one
// message matching several filters is acknowledged once, after all of them.
func (c *Client) dispatch(_ paho.Client, pm paho.Message) {
	m := Message{Topic: pm.Topic(), Payload: pm.Payload(), QoS: pm.Qos(), Retained: pm.Retained()}
	c.mu.Lock()
	var targets []*subscription
	for f, s := range c.subs {
		if Match(f, m.Topic) && !slices.Contains(targets, s) {
			targets = append(targets, s)
		}
	}
	c.mu.Unlock()
	if len(targets) == 0 {
		c.log.Debug("message not routed", "topic", m.Topic)
		pm.Ack()
		return
	}
	ack := &ackCounter{left: len(targets), ack: pm.Ack}
	for _, s := range targets {
		select {
		case s.queue <- delivery{m: m, ack: ack}:
		case <-s.done:
			ack.done()
		case <-c.ctx.Done():
			return
		}
	}
}

// Match reports whether topic matches the MQTT filter (with + and #).
// Topics starting with $ match only filters that name them explicitly.
func Match(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && !strings.HasPrefix(filter, "$") {
		return false
	}
	fs := strings.Split(filter, "/")
	ts := strings.Split(topic, "/")
	for i, f := range fs {
		if f == "#" {
			return true
		}
		if i >= len(ts) {
			return false
		}
		if f != "+" && f != ts[i] {
			return false
		}
	}
	return len(fs) == len(ts)
}

// WaitConnected blocks until connected or ctx ends.
func (c *Client) WaitConnected(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !c.IsConnected() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
