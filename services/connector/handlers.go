package connector

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/kantofw/kanto/services/internal/buffer"
	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/hono"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/uplink"
)

// onLocal takes an event, telemetry or command response from a local app.
// It is acknowledged to the broker once it is on disk.
func (c *Connector) onLocal(ctx context.Context, m mqtt.Message, ack func()) {
	c.trace(m.Topic, m.Payload)
	if err := c.corr.TakeResponse(m.Topic, m.Payload); err != nil {
		if errors.Is(err, uplink.ErrResponseNotEnvelope) {
			c.log.Warn("local message dropped", "topic", m.Topic, "err", err)
		} else {
			c.log.Debug("local message dropped", "topic", m.Topic, "err", err)
		}
		ack()
		return
	}
	qos := m.QoS
	if qos > 1 {
		qos = 1
	}
	if qos == 0 && !c.hubOnline.Load() {
		// At-most-once messages are not buffered while offline (upstream).
		c.log.Debug("QoS 0 message dropped while the hub is offline", "topic", m.Topic)
		ack()
		return
	}
	c.intake.Put(ctx, &buffer.Entry{Topic: m.Topic, QoS: qos, Payload: m.Payload}, ack)
}

// send forwards the buffer to the hub until the connection is lost or ctx
// ends (package uplink's sender, with this launch's routes and the
// MESSAGE_RATE limit).
func (c *Connector) send(ctx context.Context, hub *mqtt.Client, rt routes, lost <-chan error) error {
	c.sender.Route = func(e *buffer.Entry) ([]mqtt.Message, error) {
		topic, payload, err := rt.toCloud(e.Topic, e.Payload, e.Received)
		if err != nil {
			return nil, err
		}
		return []mqtt.Message{{Topic: topic, Payload: payload, QoS: e.QoS}}, nil
	}
	var pub uplink.Publisher = hub
	if c.o.Env.MessageRate > 0 {
		pub = newRateLimited(ctx, hub, c.o.Env.MessageRate)
	}
	return c.sender.Send(ctx, pub, lost)
}

// rateLimited is MESSAGE_RATE: a token bucket with burst 1 in front of the
// hub client.
type rateLimited struct {
	ctx context.Context
	pub uplink.Publisher
	l   *rate.Limiter
}

func newRateLimited(ctx context.Context, pub uplink.Publisher, perSecond float64) *rateLimited {
	return &rateLimited{ctx: ctx, pub: pub, l: rate.NewLimiter(rate.Limit(perSecond), 1)}
}

func (r *rateLimited) PublishAsync(m mqtt.Message) <-chan error {
	if err := r.l.Wait(r.ctx); err != nil {
		ch := make(chan error, 1)
		ch <- err
		return ch
	}
	return r.pub.PublishAsync(m)
}

// onCommand takes a command request from the hub and hands it to local apps
// on its topic and on the short form.
func (c *Connector) onCommand(ctx context.Context, rt routes, m mqtt.Message) {
	c.trace(m.Topic, m.Payload)
	env, err := ditto.Parse(m.Payload)
	if err != nil {
		c.log.Warn("command dropped: not a Ditto envelope", "topic", m.Topic, "err", err)
		return
	}
	local, err := rt.commandToLocal(m.Topic)
	if err != nil {
		c.log.Warn("command dropped", "err", err)
		return
	}
	id := env.Headers.CorrelationID()
	if c.dups.repeat(local, id, m.Payload) {
		return
	}
	timeout, ok := env.Headers.Timeout()
	if !ok {
		timeout = ditto.DefaultTimeout
	}
	if !ok || timeout > 0 {
		c.corr.Add(id, timeout+5*time.Second)
	}
	cmd, _ := hono.ParseCommand(local)
	for _, topic := range []string{local, cmd.ShortForm()} {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := c.cloud.Publish(pctx, mqtt.Message{Topic: topic, Payload: m.Payload, QoS: m.QoS}); err != nil {
			c.log.Warn("command not delivered locally", "topic", topic, "err", err)
		}
		cancel()
	}
}

// onThingRequest answers edge/thing/request. Unlike upstream it answers
// while the hub is offline too, once the settings are known.
func (c *Connector) onThingRequest(ctx context.Context, m mqtt.Message) {
	c.trace(m.Topic, m.Payload)
	c.announce(ctx)
}

func (c *Connector) announce(ctx context.Context) {
	c.mu.Lock()
	info := c.info
	c.mu.Unlock()
	if info == nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.local.Publish(pctx, mqtt.Message{Topic: TopicThingReply, Payload: info}); err != nil {
		c.log.Warn("thing info not published", "err", err)
	}
}

// onSysLog follows local command subscriptions and mirrors them on the hub.
func (c *Connector) onSysLog(ctx context.Context, m mqtt.Message) {
	ch := c.subs.Handle(m.Topic, m.Payload)
	if len(ch.Subscribe) == 0 && len(ch.Unsubscribe) == 0 {
		return
	}
	c.mu.Lock()
	hub := c.hub
	c.mu.Unlock()
	if hub == nil {
		return // the next launch subscribes from the tracker
	}
	for _, f := range ch.Subscribe {
		c.log.Debug("forwarding local command subscription", "filter", f)
		if err := hub.Subscribe(ctx, f, 0, func(context.Context, mqtt.Message) {}); err != nil {
			c.log.Warn("hub subscribe failed", "filter", f, "err", err)
		}
	}
	if len(ch.Unsubscribe) > 0 {
		c.log.Debug("dropping local command subscriptions", "filters", ch.Unsubscribe)
		if err := hub.Unsubscribe(ctx, ch.Unsubscribe...); err != nil {
			c.log.Warn("hub unsubscribe failed", "filters", ch.Unsubscribe, "err", err)
		}
	}
}

// publishStats keeps a retained snapshot of the buffer on TopicBuffer,
// at most once a second and only when it changed.
func (c *Connector) publishStats(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last buffer.Stats
	first := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := c.buf.Stats()
		if !first && st == last || !c.local.IsConnected() {
			continue
		}
		payload, _ := json.Marshal(map[string]any{"messages": st.Messages, "bytes": st.Bytes,
			"dropped": st.Dropped, "undeliverable": st.Poisoned})
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := c.local.Publish(pctx, mqtt.Message{Topic: TopicBuffer, Payload: payload, QoS: 1, Retained: true}); err == nil {
			last, first = st, false
		}
		cancel()
	}
}

// dedupe drops a second copy of the same command arriving within a short
// window: a broker with overlapping subscriptions (the gateway wildcard
// plus a forwarded device filter) may deliver a command twice.
type dedupe struct {
	now  func() time.Time
	mu   sync.Mutex
	seen map[string]time.Time
}

const dedupeWindow = 2 * time.Second

func (d *dedupe) repeat(topic, id string, payload []byte) bool {
	key := topic + "\x00" + id + "\x00" + string(payload)
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	for k, t := range d.seen {
		if now.Sub(t) > dedupeWindow {
			delete(d.seen, k)
		}
	}
	if t, ok := d.seen[key]; ok && now.Sub(t) <= dedupeWindow {
		return true
	}
	d.seen[key] = now
	return false
}
