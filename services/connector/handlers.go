package connector

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/kantofw/kanto/services/internal/buffer"
	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/hono"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// poisonLimit is how many times the hub may drop the connection while the
// same message is the oldest one in flight before it is set aside: a
// message the hub refuses (too large, say) must not block the rest forever.
const poisonLimit = 3

// onLocal takes an event, telemetry or command response from a local app.
// It is acknowledged to the broker once it is on disk.
func (c *Connector) onLocal(ctx context.Context, m mqtt.Message, ack func()) {
	if cmd, err := hono.ParseCommand(m.Topic); err == nil && cmd.Response {
		env, err := ditto.Parse(m.Payload)
		if err != nil {
			c.log.Warn("command response dropped: not a Ditto envelope", "topic", m.Topic, "err", err)
			ack()
			return
		}
		if !c.corr.take(env.Headers.CorrelationID()) {
			c.log.Debug("command response dropped: no pending command with this correlation id",
				"topic", m.Topic, "correlation-id", env.Headers.CorrelationID())
			ack()
			return
		}
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
	select {
	case c.inbox <- pending{e: &buffer.Entry{Topic: m.Topic, QoS: qos, Payload: m.Payload}, ack: ack}:
	case <-ctx.Done():
	}
}

// batcher writes what onLocal collected in as few fsyncs as possible, then
// acknowledges it. On a write error (a full disk) it keeps the messages
// unacknowledged and retries, so the broker keeps them.
func (c *Connector) batcher(ctx context.Context) {
	for {
		var batch []pending
		select {
		case <-ctx.Done():
			return
		case p := <-c.inbox:
			batch = append(batch, p)
		}
	drain:
		for len(batch) < 256 {
			select {
			case p := <-c.inbox:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		entries := make([]*buffer.Entry, len(batch))
		for i, p := range batch {
			entries[i] = p.e
		}
		for !c.store(ctx, entries) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		for _, p := range batch {
			p.ack()
		}
	}
}

// store puts entries; false means retry later (nothing was written).
func (c *Connector) store(ctx context.Context, entries []*buffer.Entry) bool {
	evicted, err := c.buf.Put(entries...)
	switch {
	case err == nil:
		if evicted > 0 {
			c.log.Warn("offline buffer full: oldest messages dropped", "dropped", evicted, "droppedTotal", c.buf.Stats().Dropped)
		}
		return true
	case errors.Is(err, buffer.ErrFull), errors.Is(err, buffer.ErrTooLarge):
		// Decide per message so one bad message does not sink its batch.
		for _, e := range entries {
			if _, err := c.buf.Put(e); err != nil {
				c.log.Warn("message not buffered", "topic", e.Topic, "bytes", len(e.Payload), "err", err)
			}
		}
		return true
	default:
		c.log.Error("cannot write the offline buffer; holding messages at the broker", "err", err)
		return false
	}
}

type inflight struct {
	seq  uint64
	done <-chan error
}

// send forwards the buffer to the hub until the connection is lost or ctx
// ends. Up to Window messages are in flight; they are removed from the
// buffer in order as the hub acknowledges them.
func (c *Connector) send(ctx context.Context, hub *mqtt.Client, rt routes, lost <-chan error) error {
	var limiter *rateLimiter
	if c.o.Env.MessageRate > 0 {
		limiter = newRateLimiter(c.o.Env.MessageRate)
	}
	var queue []inflight
	var last uint64
	// Delivered messages are removed from the buffer in batches: a crash
	// before a batch is removed only re-sends it (at-least-once), and one
	// fsync per batch instead of per acknowledgement keeps the disk free
	// for the intake.
	var acked []uint64
	flushAt := time.Time{}
	flush := func() error {
		if len(acked) == 0 {
			return nil
		}
		err := c.buf.Remove(false, acked...)
		c.mu.Lock()
		for _, s := range acked {
			delete(c.poison, s)
		}
		c.mu.Unlock()
		acked = acked[:0]
		return err
	}
	defer func() { _ = flush() }()
	tick := time.NewTicker(removeEvery)
	defer tick.Stop()
	for {
		if len(queue) < c.o.Window {
			es, err := c.buf.Peek(last, c.o.Window-len(queue))
			if err != nil {
				return err
			}
			for _, e := range es {
				last = e.Seq
				topic, payload, err := rt.toCloud(e.Topic, e.Payload, e.Received)
				if err != nil {
					c.log.Warn("message set aside: no cloud topic", "topic", e.Topic, "err", err)
					_ = c.buf.Remove(true, e.Seq)
					continue
				}
				if limiter != nil {
					if err := limiter.wait(ctx); err != nil {
						return err
					}
				}
				queue = append(queue, inflight{seq: e.Seq, done: hub.PublishAsync(mqtt.Message{Topic: topic, Payload: payload, QoS: e.QoS})})
			}
		}
		var head <-chan error
		if len(queue) > 0 {
			head = queue[0].done
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-lost:
			c.notePoison(queue)
			return err
		case <-c.buf.Notify():
		case <-tick.C:
			if len(acked) > 0 && time.Since(flushAt) >= removeEvery {
				if err := flush(); err != nil {
					return err
				}
			}
		case err := <-head:
			if err != nil {
				c.notePoison(queue)
				return err
			}
			if len(acked) == 0 {
				flushAt = time.Now()
			}
			acked = append(acked, queue[0].seq)
			queue = queue[1:]
		more:
			for len(queue) > 0 {
				select {
				case err := <-queue[0].done:
					if err != nil {
						c.notePoison(queue)
						return err
					}
					acked = append(acked, queue[0].seq)
					queue = queue[1:]
				default:
					break more
				}
			}
			if len(acked) >= removeBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
}

// Removal batching of delivered messages (see send).
const (
	removeBatch = 1024
	removeEvery = 50 * time.Millisecond
)

// notePoison counts a lost connection against the oldest unacknowledged
// message and sets it aside after poisonLimit strikes.
func (c *Connector) notePoison(queue []inflight) {
	if len(queue) == 0 {
		return
	}
	seq := queue[0].seq
	c.mu.Lock()
	c.poison[seq]++
	strikes := c.poison[seq]
	if strikes >= poisonLimit {
		delete(c.poison, seq)
	}
	c.mu.Unlock()
	if strikes >= poisonLimit {
		c.log.Error("message set aside: the hub dropped the connection each time it was sent", "seq", seq, "strikes", strikes)
		_ = c.buf.Remove(true, seq)
	}
}

// onCommand takes a command request from the hub and hands it to local apps
// on its topic and on the short form.
func (c *Connector) onCommand(ctx context.Context, rt routes, m mqtt.Message) {
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
		c.corr.add(id, timeout+5*time.Second)
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
func (c *Connector) onThingRequest(ctx context.Context, _ mqtt.Message) { c.announce(ctx) }

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
	ch := c.subs.handle(m.Topic, m.Payload)
	if len(ch.subscribe) == 0 && len(ch.unsubscribe) == 0 {
		return
	}
	c.mu.Lock()
	hub := c.hub
	c.mu.Unlock()
	if hub == nil {
		return // the next launch subscribes from the tracker
	}
	for _, f := range ch.subscribe {
		c.log.Debug("forwarding local command subscription", "filter", f)
		if err := hub.Subscribe(ctx, f, 0, func(context.Context, mqtt.Message) {}); err != nil {
			c.log.Warn("hub subscribe failed", "filter", f, "err", err)
		}
	}
	if len(ch.unsubscribe) > 0 {
		c.log.Debug("dropping local command subscriptions", "filters", ch.unsubscribe)
		if err := hub.Unsubscribe(ctx, ch.unsubscribe...); err != nil {
			c.log.Warn("hub unsubscribe failed", "filters", ch.unsubscribe, "err", err)
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
		payload := []byte(`{"messages":` + itoa(int64(st.Messages)) + `,"bytes":` + itoa(st.Bytes) +
			`,"dropped":` + itoa(int64(st.Dropped)) + `,"undeliverable":` + itoa(int64(st.Poisoned)) + `}`)
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
