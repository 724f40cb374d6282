package awsconnector

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kantofw/kanto/services/internal/buffer"
	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/hono"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/uplink"
)

// onLocal takes a local event, telemetry message or command response and
// acknowledges it once it is on disk; mapping happens when it is sent.
func (c *Connector) onLocal(ctx context.Context, m mqtt.Message, ack func()) {
	c.trace(m.Topic, m.Payload)
	if err := c.corr.TakeResponse(m.Topic, m.Payload); err != nil {
		c.log.Debug("local message dropped", "topic", m.Topic, "err", err)
		c.intake.Put(ctx, nil, ack)
		return
	}
	qos := min(m.QoS, 1)
	if qos == 0 && !c.online.Load() {
		c.intake.Put(ctx, nil, ack)
		return
	}
	c.intake.Put(ctx, &buffer.Entry{Topic: m.Topic, QoS: qos, Payload: m.Payload}, ack)
}

// route maps a buffered message to AWS: shadow messages for twin commands,
// otherwise Hono's topic shapes with x-timestamp.
func (c *Connector) route(e *buffer.Entry) ([]mqtt.Message, error) {
	id, mp := c.device()
	if cmd, err := hono.ParseCommand(e.Topic); err == nil && cmd.Response {
		cmd.Short, cmd.Tenant = false, ""
		return []mqtt.Message{{Topic: cmd.Long(), Payload: e.Payload, QoS: e.QoS}}, nil
	}
	if env, err := ditto.Parse(e.Payload); err == nil {
		msgs, ok, err := mp.toShadow(env)
		if ok {
			if err != nil {
				return nil, err
			}
			return msgs, nil
		}
	}
	payload, err := withTimestamp(e.Payload, e.Received)
	if err != nil {
		return nil, err
	}
	return []mqtt.Message{{Topic: hono.ParseData(e.Topic).CloudTopic(c.s.TenantID, id), Payload: payload, QoS: e.QoS}}, nil
}

// withTimestamp sets headers.x-timestamp (Unix ms) in a JSON object.
func withTimestamp(payload []byte, t time.Time) ([]byte, error) {
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, fmt.Errorf("%w: payload is not a JSON object", uplink.ErrRoute)
	}
	headers := map[string]any{}
	if raw, ok := obj["headers"]; ok && string(raw) != "null" {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&headers); err != nil {
			return nil, fmt.Errorf("%w: headers are not an object", uplink.ErrRoute)
		}
	}
	headers["x-timestamp"] = t.UnixMilli()
	h, _ := json.Marshal(headers)
	obj["headers"] = h
	return json.Marshal(obj)
}

// onShadow keeps the shadow cache in step with what AWS accepted.
func (c *Connector) onShadow(_ context.Context, m mqtt.Message) {
	id, _ := c.device()
	rest := strings.TrimPrefix(m.Topic, "$aws/things/"+id+"/shadow/")
	name := ""
	if after, ok := strings.CutPrefix(rest, "name/"); ok {
		name, rest, _ = strings.Cut(after, "/")
	}
	switch rest {
	case "get/accepted", "get/rejected":
		c.onGet(rest == "get/accepted", m.Payload)
	case "update/rejected":
		// AWS refused an update (too large, invalid); what it holds is
		// unknown now, so fetch it before the next modify.
		c.log.Warn("AWS rejected a shadow update", "shadow", name, "answer", string(m.Payload))
		c.cache.forget(name)
	case "delete/accepted":
		c.cache.remove(name)
	case "update/accepted":
		var doc struct {
			State *struct {
				Reported json.RawMessage `json:"reported"`
			} `json:"state"`
		}
		if err := json.Unmarshal(m.Payload, &doc); err != nil || doc.State == nil || len(doc.State.Reported) == 0 {
			c.log.Debug("shadow update/accepted without state.reported ignored", "topic", m.Topic)
			return
		}
		if string(doc.State.Reported) == "null" {
			c.cache.remove(name)
			return
		}
		v, err := decodeJSON(doc.State.Reported)
		if r, ok := v.(map[string]any); err == nil && ok {
			c.cache.merge(name, r)
		}
	}
}

// onCommand takes a command from AWS for the device or one of its child
// things and hands it to local apps on its topic and the short form.
func (c *Connector) onCommand(ctx context.Context, m mqtt.Message) {
	c.trace(m.Topic, m.Payload)
	id, _ := c.device()
	env, err := ditto.Parse(m.Payload)
	if err != nil {
		c.log.Warn("command dropped: not a Ditto envelope", "topic", m.Topic, "err", err)
		return
	}
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil || t.ThingID() != id && !strings.HasPrefix(t.ThingID(), id+":") {
		c.log.Debug("command dropped: not for this device", "topic", m.Topic, "thing", t.ThingID())
		return
	}
	// cmd//<dev>/q/… is the short form: locally command//<dev>/req/… and
	// c//<dev>/q/… (upstream computed c///q/ here).
	topic := m.Topic
	if rest, ok := strings.CutPrefix(topic, "cmd/"); ok {
		topic = "c/" + rest
	}
	cmd, err := hono.ParseCommand(topic)
	if err != nil || cmd.Response {
		c.log.Warn("command dropped: not a command request", "topic", m.Topic)
		return
	}
	timeout, ok := env.Headers.Timeout()
	if !ok {
		timeout = ditto.DefaultTimeout
	}
	if !ok || timeout > 0 {
		c.corr.Add(env.Headers.CorrelationID(), timeout+5*time.Second)
	}
	for _, lt := range []string{cmd.Long(), cmd.ShortForm()} {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := c.cloud.Publish(pctx, mqtt.Message{Topic: lt, Payload: m.Payload, QoS: m.QoS}); err != nil {
			c.log.Warn("command not delivered locally", "topic", lt, "err", err)
		}
		cancel()
	}
}

// getTimeout bounds the wait for a shadow get before a modify.
const getTimeout = 5 * time.Second

// getShadow asks AWS for a shadow's reported state.
func (c *Connector) getShadow(ctx context.Context, aws *mqtt.Client, id, name string) (map[string]any, error) {
	token := randomToken()
	ch := make(chan getAnswer, 1)
	c.mu.Lock()
	c.gets[token] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.gets, token)
		c.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, getTimeout)
	defer cancel()
	payload, _ := json.Marshal(map[string]string{"clientToken": token})
	if err := aws.Publish(ctx, mqtt.Message{Topic: shadowTopic(id, name, "get"), Payload: payload, QoS: 1}); err != nil {
		return nil, err
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case a := <-ch:
		if a.missing {
			return nil, nil
		}
		return a.reported, a.err
	}
}

func (c *Connector) onGet(accepted bool, payload []byte) {
	var doc struct {
		ClientToken string `json:"clientToken"`
		Code        int    `json:"code"`
		State       struct {
			Reported json.RawMessage `json:"reported"`
		} `json:"state"`
	}
	if err := json.Unmarshal(payload, &doc); err != nil {
		return
	}
	c.mu.Lock()
	ch := c.gets[doc.ClientToken]
	c.mu.Unlock()
	if ch == nil {
		return
	}
	var a getAnswer
	switch {
	case !accepted && doc.Code == 404:
		a.missing = true
	case !accepted:
		a.err = fmt.Errorf("shadow get rejected: %s", payload)
	case len(doc.State.Reported) > 0 && string(doc.State.Reported) != "null":
		v, err := decodeJSON(doc.State.Reported)
		r, _ := v.(map[string]any)
		a.reported, a.err = r, err
	}
	select {
	case ch <- a:
	default:
	}
}

func randomToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// trace logs a handled message's payload when TRACE_TOPIC_PREFIX asks for
// its topic (uplink.Tracer).
func (c *Connector) trace(topic string, payload []byte) {
	uplink.Tracer{Prefixes: c.o.Env.TracePrefixes, Log: c.log}.Trace(topic, payload)
}
