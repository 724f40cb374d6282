package updatemanager

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/hono"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/updateapi"
)

// Ditto face of the manager (UM:things/update_manager_feature.go).
const (
	FeatureID         = "UpdateManager"
	FeatureDefinition = "com.bosch.iot.suite.edge.update:UpdateManager:1.0.0"

	edgeRequest  = "edge/thing/request"
	edgeResponse = "edge/thing/response"
)

// thingsCloud is the Cloud of thingsEnabled=true: the UpdateManager feature
// of the edge thing, reached through the local connector.
type thingsCloud struct {
	c      *mqtt.Client
	domain string
	now    func() time.Time
	log    *slog.Logger
	ack    time.Duration

	mu        sync.Mutex
	thing     ditto.Topic // Namespace and Name set once known
	known     bool
	consentID string // correlation-id of the pending consent request
	m         *Manager
}

var _ Cloud = (*thingsCloud)(nil)

func newThingsCloud(c *mqtt.Client, cfg Config, now func() time.Time, log *slog.Logger) *thingsCloud {
	return &thingsCloud{c: c, domain: cfg.Domain, now: now, log: log, ack: cfg.Connection.AcknowledgeTimeout.D()}
}

func (t *thingsCloud) subscribe(ctx context.Context, m *Manager) error {
	t.m = m
	if err := t.c.Subscribe(ctx, edgeResponse, 1, t.onEdge); err != nil {
		return err
	}
	return t.c.Subscribe(ctx, hono.RequestFilter, 1, t.onCommand)
}

// onConnect asks the connector for the thing identity.
func (t *thingsCloud) onConnect() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := t.c.Publish(ctx, mqtt.Message{Topic: edgeRequest, QoS: 1}); err != nil {
		t.log.Warn("edge thing request", "err", err)
	}
}

func (t *thingsCloud) onEdge(ctx context.Context, msg mqtt.Message) {
	var ec struct {
		DeviceID string `json:"deviceId"`
	}
	if err := json.Unmarshal(msg.Payload, &ec); err != nil {
		t.log.Warn("edge configuration", "err", err)
		return
	}
	ns, name, err := ditto.SplitID(ec.DeviceID)
	if err != nil {
		t.log.Warn("edge configuration", "err", err)
		return
	}
	t.mu.Lock()
	same := t.known && t.thing.Namespace == ns && t.thing.Name == name
	t.thing, t.known = ditto.Topic{Namespace: ns, Name: name, Group: "things"}, true
	t.mu.Unlock()
	if same {
		return
	}
	t.log.Info("edge thing", "thingId", ec.DeviceID)
	value, _ := json.Marshal(map[string]any{"definition": []string{FeatureDefinition}, "properties": map[string]any{"domain": t.domain}})
	t.twinModify(ctx, "/features/"+FeatureID, value)
	t.m.Refresh(InitialActivityID(t.now()))
}

func (t *thingsCloud) topic(channel, criterion, action string) (ditto.Topic, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tp := t.thing
	tp.Channel, tp.Criterion, tp.Action = channel, criterion, action
	return tp, t.known
}

func (t *thingsCloud) send(ctx context.Context, env *ditto.Envelope) {
	b, err := env.Marshal()
	if err != nil {
		t.log.Error("encode ditto message", "err", err)
		return
	}
	if t.ack > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.ack)
		defer cancel()
	}
	if err := t.c.Publish(ctx, mqtt.Message{Topic: "e", QoS: 1, Payload: b}); err != nil {
		t.log.Warn("publish", "err", err)
	}
}

func (t *thingsCloud) twinModify(ctx context.Context, path string, value json.RawMessage) {
	tp, ok := t.topic("twin", "commands", "modify")
	if !ok {
		return
	}
	t.send(ctx, &ditto.Envelope{Topic: tp.String(), Path: path, Value: value,
		Headers: ditto.Headers{"response-required": false, "correlation-id": randomID(), "content-type": ditto.ContentTypeJSON}})
}

func (t *thingsCloud) outbox(ctx context.Context, subject string, value any, correlationID string, responseRequired bool) {
	tp, ok := t.topic("live", "messages", subject)
	if !ok {
		t.log.Warn("no edge thing yet, dropping message", "subject", subject)
		return
	}
	b, _ := json.Marshal(value)
	t.send(ctx, &ditto.Envelope{Topic: tp.String(), Path: "/features/" + FeatureID + "/outbox/messages/" + subject, Value: b,
		Headers: ditto.Headers{"response-required": responseRequired, "correlation-id": correlationID, "content-type": ditto.ContentTypeJSON}})
}

func (t *thingsCloud) Feedback(ctx context.Context, activityID string, f updateapi.Feedback) {
	t.outbox(ctx, "feedback", map[string]any{"activityId": activityID, "timestamp": t.now().UnixMilli(), "desiredStateFeedback": f}, randomID(), false)
}

func (t *thingsCloud) CurrentState(ctx context.Context, activityID string, inv updateapi.Inventory) {
	b, _ := json.Marshal(map[string]any{"activityId": activityID, "timestamp": t.now().UnixMilli(), "domain": t.domain, "inventory": inv})
	t.twinModify(ctx, "/features/"+FeatureID+"/properties", b)
}

func (t *thingsCloud) Consent(ctx context.Context, activityID string, cmd updateapi.CommandType) error {
	id := randomID()
	t.mu.Lock()
	t.consentID = id
	known := t.known
	t.mu.Unlock()
	if !known {
		return fmt.Errorf("no edge thing identity yet")
	}
	t.outbox(ctx, "consent", map[string]any{"activityId": activityID, "timestamp": t.now().UnixMilli(),
		"ownerConsent": updateapi.OwnerConsent{Command: cmd}}, id, true)
	return nil
}

// onCommand handles inbox messages apply, refresh and consent; anything
// else is ignored without a reply, as upstream.
func (t *thingsCloud) onCommand(ctx context.Context, msg mqtt.Message) {
	cmd, err := hono.ParseCommand(msg.Topic)
	if err != nil || cmd.Response {
		return
	}
	env, err := ditto.Parse(msg.Payload)
	if err != nil {
		return
	}
	tp, err := ditto.ParseTopic(env.Topic)
	if err != nil || tp.Channel != "live" || tp.Criterion != "messages" {
		return
	}
	t.mu.Lock()
	mine := t.known && tp.Namespace == t.thing.Namespace && tp.Name == t.thing.Name
	t.mu.Unlock()
	if !mine || !strings.HasPrefix(env.Path, "/features/"+FeatureID+"/inbox/messages/") {
		return
	}
	op := tp.Action
	reply := func(status int, body any) {
		if !env.Headers.ResponseRequired() {
			return
		}
		rt := tp
		h := ditto.Headers{"correlation-id": env.Headers.CorrelationID(), "response-required": false}
		out := &ditto.Envelope{Topic: rt.String(), Path: "/features/" + FeatureID + "/outbox/messages/" + op, Status: status, Headers: h}
		if body != nil {
			out.Value, _ = json.Marshal(body)
			h["content-type"] = ditto.ContentTypeJSON
		}
		b, _ := out.Marshal()
		_ = t.c.Publish(ctx, mqtt.Message{Topic: fmt.Sprintf("command///res/%s/%d", cmd.RequestID(), status), QoS: 1, Payload: b})
	}
	bad := func(m string) {
		reply(400, map[string]any{"error": "messages:parameter.invalid", "status": 400, "message": m})
	}
	var v struct {
		ActivityID           string                          `json:"activityId"`
		Timestamp            int64                           `json:"timestamp"`
		DesiredState         json.RawMessage                 `json:"desiredState"`
		OwnerConsentFeedback *updateapi.OwnerConsentFeedback `json:"ownerConsentFeedback"`
	}
	switch op {
	case "apply", "refresh", "consent":
	default:
		return
	}
	if err := json.Unmarshal(env.Value, &v); err != nil {
		bad(fmt.Sprintf("cannot parse %s payload: %v", op, err))
		return
	}
	switch op {
	case "apply":
		if len(v.DesiredState) == 0 || string(v.DesiredState) == "null" {
			bad("desired state is missing")
			return
		}
		reply(204, nil)
		t.m.ApplyParsed(v.ActivityID, v.DesiredState)
	case "refresh":
		reply(204, nil)
		t.m.Refresh(v.ActivityID)
	case "consent":
		t.mu.Lock()
		want := t.consentID
		t.mu.Unlock()
		switch {
		case want == "":
			bad("owner consent handler not available")
			return
		case env.Headers.CorrelationID() != want:
			bad("correlation id mismatch")
			return
		case v.OwnerConsentFeedback == nil:
			bad("owner consent feedback is missing")
			return
		}
		reply(204, nil)
		t.mu.Lock()
		t.consentID = ""
		t.mu.Unlock()
		t.m.ConsentFeedback(v.ActivityID, v.OwnerConsentFeedback.Status)
	}
}
