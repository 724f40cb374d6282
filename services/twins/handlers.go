package twins

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/kantofw/kanto/services/internal/buffer"
	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/hono"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/uplink"
)

// onLocal takes an event, telemetry message or command response of a local
// app. Twin commands are applied to the local twins; everything else goes
// to the offline buffer. Every message is acknowledged in arrival order,
// and only once it is handled or on disk.
func (s *Service) onLocal(ctx context.Context, m mqtt.Message, ack func()) {
	s.trace(m.Topic, m.Payload)
	if c, err := hono.ParseCommand(m.Topic); err == nil && c.Response {
		if err := s.corr.TakeResponse(m.Topic, m.Payload); err != nil {
			s.log.Debug("local message dropped", "topic", m.Topic, "err", err)
			s.intake.Put(ctx, nil, ack)
			return
		}
		s.buffer(ctx, m, ack)
		return
	}
	if d := hono.ParseData(m.Topic); d.Kind == hono.Event {
		if env, err := ditto.Parse(m.Payload); err == nil {
			if t, err := ditto.ParseTopic(env.Topic); err == nil && t.Group == "things" && t.Channel == "twin" && t.Criterion == "commands" {
				if s.handleTwin(ctx, env, t) {
					s.intake.Put(ctx, nil, ack)
					return
				}
			}
		}
	}
	s.buffer(ctx, m, ack)
}

func (s *Service) buffer(ctx context.Context, m mqtt.Message, ack func()) {
	qos := min(m.QoS, 1)
	if qos == 0 && !s.online.Load() {
		s.log.Debug("QoS 0 message dropped while the hub is offline", "topic", m.Topic)
		s.intake.Put(ctx, nil, ack)
		return
	}
	s.intake.Put(ctx, &buffer.Entry{Topic: m.Topic, QoS: qos, Payload: m.Payload}, ack)
}

// handleTwin applies a local twin command. It returns false for commands
// that are not applied locally (unsupported paths or actions): those go to
// the cloud unchanged, through the buffer.
func (s *Service) handleTwin(ctx context.Context, env *ditto.Envelope, t ditto.Topic) bool {
	// The store and the device id stay the same for the whole command.
	s.idMu.RLock()
	defer s.idMu.RUnlock()
	log := s.log.With("thing", t.ThingID(), "action", t.Action, "path", env.Path, "correlation-id", env.Headers.CorrelationID())
	if t.Namespace == "_" && t.Name == "_" {
		if t.Action != "retrieve" || env.Path != "/" {
			return false
		}
		if s.things == nil {
			return s.unidentified(ctx, log, env, t, nil)
		}
		s.retrieveMany(ctx, env, t)
		return true
	}
	if _, _, err := ditto.SplitID(t.ThingID()); err != nil {
		log.Warn("twin command dropped: invalid thing id", "err", err)
		return true
	}
	tgt := parsePath(env.Path)
	switch tgt.scope {
	case scopeUnknown:
		log.Warn("twin command dropped: unknown path")
		return true
	case scopeUnsupported:
		log.Debug("twin command not applied locally; forwarded")
		return false
	}
	c := &command{env: env, topic: t, thingID: t.ThingID(), tgt: tgt}
	if s.things == nil {
		return s.unidentified(ctx, log, env, t, c)
	}
	auto := s.settings().AutoProvisioning
	s.mu.Lock()
	var res result
	now := s.o.Now()
	err := s.things.update(c.thingID, func(cur *record) (*record, bool, error) {
		res = apply(cur, c, now, auto)
		if res.remove {
			return nil, true, nil
		}
		if res.write {
			return res.rec, false, nil
		}
		return nil, false, nil
	})
	s.mu.Unlock()
	if res.status == 0 && res.err == nil {
		log.Debug("twin command not applied locally; forwarded")
		return false
	}
	if err != nil {
		log.Error("twin command failed", "err", err)
		res = fail(errUnknown("Thing storage failed", err))
	}
	if res.provisioned {
		s.publishEvent(ctx, provisionedEvent(env, t, res.rec))
	}
	if res.err != nil {
		log.Debug("twin command failed", "err", res.err.Error, "status", res.err.Status)
		if env.Headers.ResponseRequired() {
			s.publishLocal(ctx, c.thingID, errorEnvelope(env, t, res.err), "errors-response")
		}
	} else {
		if env.Headers.ResponseRequired() {
			s.publishLocal(ctx, c.thingID, responseEnvelope(env, res), t.Action+"-response")
		}
		if res.event != "" {
			s.publishEvent(ctx, eventEnvelope(env, t, res))
		}
	}
	if res.invalid {
		return true // upstream: an unparsable value is not forwarded
	}
	s.forward(ctx, c, res)
	return true
}

// unidentified handles a twin command that arrives while the service has
// no device identity, so no twin database (see the package doc). A command
// that is not applied locally goes to the cloud through the buffer, as
// always; one with an unparsable value gets json.invalid, as always. Any
// other is dropped: it is neither applied nor forwarded, and a required
// response is upstream's "unknown" error ("Try it later."). c is nil for a
// multi-thing retrieve.
func (s *Service) unidentified(ctx context.Context, log *slog.Logger, env *ditto.Envelope, t ditto.Topic, c *command) bool {
	err := errUnknown("Thing storage unavailable", errNoIdentity)
	if c != nil {
		// apply is pure: run against no thing, it tells whether the
		// command is one for the local twins at all.
		probe := apply(nil, c, s.o.Now(), true)
		if probe.status == 0 && probe.err == nil {
			log.Debug("twin command not applied locally; forwarded")
			return false
		}
		if probe.invalid {
			err = probe.err
		}
	}
	log.Warn("twin command dropped: no device identity yet", "err", errNoIdentity)
	if env.Headers.ResponseRequired() {
		s.publishLocal(ctx, t.ThingID(), errorEnvelope(env, t, err), "errors-response")
	}
	return true
}

// errNoIdentity is why twin commands are refused before the device has an
// identity.
var errNoIdentity = errors.New("the device has no identity yet (waiting for the provisioning file)")

// forward sends a handled twin command to the cloud when it is connected
// and marks the change synchronised once the cloud acknowledged it. While
// offline nothing is sent: the change stays marked and the next sync sends
// the resulting state.
func (s *Service) forward(ctx context.Context, c *command, res result) {
	s.hubMu.Lock()
	hub := s.hub
	s.hubMu.Unlock()
	if hub == nil || !s.online.Load() {
		s.log.Debug("twin command kept for the next sync: the cloud is offline", "thing", c.thingID, "path", c.env.Path)
		return
	}
	env := *c.env
	if c.topic.Action == "retrieve" {
		// Already answered locally.
		env.Headers = withHeader(env.Headers, "response-required", false)
	}
	payload, _ := json.Marshal(&env)
	pctx, cancel := context.WithTimeout(ctx, s.o.Env.PublishAckTimeout)
	defer cancel()
	if err := hub.Publish(pctx, mqtt.Message{Topic: s.cloudTopic(c.thingID), Payload: payload, QoS: 1}); err != nil {
		s.log.Debug("twin command not forwarded; synchronised later", "err", err)
		return
	}
	s.log.Debug("twin command forwarded", "thing", c.thingID, "path", c.env.Path, "correlation-id", c.env.Headers.CorrelationID())
	if res.err != nil || !res.write && !res.remove {
		return
	}
	switch {
	case res.remove:
		_ = s.things.clearTombstone(c.thingID)
	case c.tgt.scope == scopeThing:
		_ = s.things.synced(c.thingID, res.rec.Revision, true)
		_ = s.things.deletionsSynced(c.thingID, res.rec.Revision, keys(res.rec.Deleted))
	case c.tgt.scope == scopeFeatures:
		fs, _ := res.rec.features()
		_ = s.things.synced(c.thingID, res.rec.Revision, false, keys(fs)...)
		_ = s.things.deletionsSynced(c.thingID, res.rec.Revision, keys(res.rec.Deleted))
	default:
		_ = s.things.synced(c.thingID, res.rec.Revision, false, c.tgt.feature)
		_ = s.things.deletionsSynced(c.thingID, res.rec.Revision, []string{c.tgt.feature})
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// cloudTopic is the hub topic of a twin message about thing id: the
// device's own event topic or the gateway form for other things (Hono's
// event/<tenant>/<device>, equal to upstream's e and e/<tenant>/<id>).
func (s *Service) cloudTopic(thingID string) string {
	return "event/" + s.settings().TenantID + "/" + thingID
}

// localTopic is where local apps get twin responses and events: upstream's
// command///req//<action> for the device, command//<id>/req//<action>
// for other things.
func (s *Service) localTopic(thingID, action string) string {
	if thingID == s.settings().DeviceID {
		return "command///req//" + action
	}
	return "command//" + thingID + "/req//" + action
}

func (s *Service) publishLocal(ctx context.Context, thingID string, env *ditto.Envelope, action string) {
	data, err := json.Marshal(env)
	if err != nil {
		s.log.Error("response not encoded", "err", err)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.out.Publish(pctx, mqtt.Message{Topic: s.localTopic(thingID, action), Payload: data, QoS: 1}); err != nil {
		s.log.Warn("local publish failed", "topic", s.localTopic(thingID, action), "err", err)
	}
}

func (s *Service) publishEvent(ctx context.Context, env *ditto.Envelope) {
	t, _ := ditto.ParseTopic(env.Topic)
	s.publishLocal(ctx, t.ThingID(), env, t.Action)
}

// onCommand takes a command from the hub: answers to the sync's own
// retrieves are consumed; everything else goes to local apps on its topic
// and the short form.
func (s *Service) onCommand(ctx context.Context, m mqtt.Message) {
	s.trace(m.Topic, m.Payload)
	env, err := ditto.Parse(m.Payload)
	if err != nil {
		s.log.Warn("command dropped: not a Ditto envelope", "topic", m.Topic, "err", err)
		return
	}
	if s.takePending(env) {
		return
	}
	cmd, err := hono.ParseCommand(m.Topic)
	if err != nil || cmd.Response {
		s.log.Warn("command dropped: not a command request", "topic", m.Topic)
		return
	}
	timeout, ok := env.Headers.Timeout()
	if !ok {
		timeout = ditto.DefaultTimeout
	}
	if !ok || timeout > 0 {
		s.corr.Add(env.Headers.CorrelationID(), timeout+5*time.Second)
	}
	for _, topic := range []string{m.Topic, cmd.ShortForm()} {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := s.cloud.Publish(pctx, mqtt.Message{Topic: topic, Payload: m.Payload, QoS: m.QoS}); err != nil {
			s.log.Warn("command not delivered locally", "topic", topic, "err", err)
		}
		cancel()
	}
}

// trace logs a handled message's payload when TRACE_TOPIC_PREFIX asks for
// its topic (uplink.Tracer).
func (s *Service) trace(topic string, payload []byte) {
	uplink.Tracer{Prefixes: s.o.Env.TracePrefixes, Log: s.log}.Trace(topic, payload)
}
