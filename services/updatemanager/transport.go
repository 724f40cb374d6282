package updatemanager

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/updateapi"
)

// mqttAgents talks to domain agents on <domain>update/... topics.
type mqttAgents struct {
	c   *mqtt.Client
	now func() time.Time
	ack time.Duration
}

var _ Agents = (*mqttAgents)(nil)

func (a *mqttAgents) publish(ctx context.Context, topic, activityID string, payload any) error {
	b, err := updateapi.NewEnvelope(activityID, a.now(), payload)
	if err != nil {
		return err
	}
	if a.ack > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.ack)
		defer cancel()
	}
	return a.c.Publish(ctx, mqtt.Message{Topic: topic, QoS: 1, Payload: b})
}

func (a *mqttAgents) SendDesiredState(ctx context.Context, domain, activityID string, ds *updateapi.DesiredState) error {
	return a.publish(ctx, updateapi.TopicPrefix(domain)+updateapi.SuffixDesiredState, activityID, ds)
}

func (a *mqttAgents) SendCommand(ctx context.Context, domain, activityID string, cmd updateapi.CommandType) error {
	return a.publish(ctx, updateapi.TopicPrefix(domain)+updateapi.SuffixDesiredStateCommand, activityID, updateapi.DesiredStateCommand{Command: cmd})
}

func (a *mqttAgents) RequestCurrentState(ctx context.Context, domain, activityID string) error {
	return a.publish(ctx, updateapi.TopicPrefix(domain)+updateapi.SuffixCurrentStateGet, activityID, nil)
}

// subscribeAgents routes each agent's feedback and current state to m.
func subscribeAgents(ctx context.Context, c *mqtt.Client, m *Manager, domains []string) error {
	for _, d := range domains {
		p := updateapi.TopicPrefix(d)
		if err := c.Subscribe(ctx, p+updateapi.SuffixDesiredStateFeedback, 1, func(_ context.Context, msg mqtt.Message) {
			m.AgentFeedback(d, msg.Payload)
		}); err != nil {
			return fmt.Errorf("subscribe %s: %w", d, err)
		}
		if err := c.Subscribe(ctx, p+updateapi.SuffixCurrentState, 1, func(_ context.Context, msg mqtt.Message) {
			m.AgentCurrentState(d, msg.Payload)
		}); err != nil {
			return fmt.Errorf("subscribe %s: %w", d, err)
		}
	}
	return nil
}

// mqttCloud is the cloud face with thingsEnabled=false: the manager acts as
// the agent of its own domain on <domain>update/... (e.g. deviceupdate/...).
type mqttCloud struct {
	c      *mqtt.Client
	prefix string
	now    func() time.Time
	ack    time.Duration
}

var _ Cloud = (*mqttCloud)(nil)

func (p *mqttCloud) publish(ctx context.Context, suffix, activityID string, payload any, retained bool) error {
	b, err := updateapi.NewEnvelope(activityID, p.now(), payload)
	if err != nil {
		return err
	}
	if p.ack > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.ack)
		defer cancel()
	}
	return p.c.Publish(ctx, mqtt.Message{Topic: p.prefix + suffix, QoS: 1, Payload: b, Retained: retained})
}

func (p *mqttCloud) Feedback(ctx context.Context, activityID string, f updateapi.Feedback) {
	_ = p.publish(ctx, updateapi.SuffixDesiredStateFeedback, activityID, f, false)
}

func (p *mqttCloud) CurrentState(ctx context.Context, activityID string, inv updateapi.Inventory) {
	_ = p.publish(ctx, updateapi.SuffixCurrentState, activityID, inv, true)
}

func (p *mqttCloud) Consent(ctx context.Context, activityID string, cmd updateapi.CommandType) error {
	return p.publish(ctx, updateapi.SuffixOwnerConsent, activityID, updateapi.OwnerConsent{Command: cmd}, false)
}

// subscribeCloud routes deviceupdate/desiredstate, currentstate/get and
// ownerconsentfeedback to m. desiredstate/command from the cloud is
// accepted and ignored, as upstream's aggregated manager does.
func subscribeCloud(ctx context.Context, c *mqtt.Client, m *Manager, prefix string) error {
	subs := map[string]mqtt.Handler{
		prefix + updateapi.SuffixDesiredState: func(_ context.Context, msg mqtt.Message) { m.Apply(msg.Payload) },
		prefix + updateapi.SuffixCurrentStateGet: func(_ context.Context, msg mqtt.Message) {
			m.Refresh(updateapi.PeekActivityID(msg.Payload))
		},
		prefix + updateapi.SuffixOwnerConsentFeedback: func(_ context.Context, msg mqtt.Message) {
			env, err := updateapi.ParseEnvelope(msg.Payload)
			if err != nil {
				return
			}
			var f updateapi.OwnerConsentFeedback
			if json.Unmarshal(env.Payload, &f) != nil {
				return
			}
			m.ConsentFeedback(env.ActivityID, f.Status)
		},
	}
	for t, h := range subs {
		if err := c.Subscribe(ctx, t, 1, h); err != nil {
			return fmt.Errorf("subscribe %s: %w", t, err)
		}
	}
	return nil
}
