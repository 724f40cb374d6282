package uplink

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/kantofw/kanto/services/internal/mqtt"
)

// Local topics of the connection API.
const (
	TopicStatus       = "edge/connection/remote/status"
	TopicThingRequest = "edge/thing/request"
	TopicThingReply   = "edge/thing/response"
)

// Status causes, as upstream.
const (
	CauseConfigError         = "CONFIG_ERROR"
	CauseProvisioningMissing = "PROVISIONING_MISSING"
	CauseProvisioningError   = "PROVISIONING_ERROR"
	CauseConnectionError     = "CONNECTION_ERROR"
	CauseNotAuthenticated    = "CONNECTION_NOT_AUTHENTICATED"
	CauseConnectionClosed    = "CONNECTION_CLOSED"
	CauseConnectionUnknown   = "CONNECTION_UNKNOWN"
	CauseProvisioningUpdate  = "PROVISIONING_UPDATE"
)

// Status is the payload of edge/connection/remote/status.
type Status struct {
	Connected bool   `json:"connected"`
	Timestamp int64  `json:"timestamp,omitempty"`
	Cause     string `json:"cause,omitempty"`
}

// Will is the last will on the local "connector" client: no timestamp, as
// upstream.
func Will() *mqtt.Message {
	return &mqtt.Message{Topic: TopicStatus, Payload: []byte(`{"connected":false,"cause":"CONNECTION_UNKNOWN"}`), QoS: 1, Retained: true}
}

// CauseOf maps a hub connect error to a status cause.
func CauseOf(err error) string {
	if errorsIs(err, mqtt.ErrNotAuthenticated) {
		return CauseNotAuthenticated
	}
	return CauseConnectionError
}

// StatusPublisher publishes retained statuses on a local client and
// re-publishes the latest one when that client reconnects (call Republish
// from its OnConnect), so the broker never keeps the LWT of a live service.
type StatusPublisher struct {
	Client *mqtt.Client
	Now    func() time.Time

	mu   sync.Mutex
	last []byte
}

// Send publishes a status; cause "" means connected.
func (p *StatusPublisher) Send(ctx context.Context, cause string) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	data, _ := json.Marshal(Status{Connected: cause == "", Timestamp: now().Unix(), Cause: cause})
	p.mu.Lock()
	p.last = data
	p.mu.Unlock()
	p.publish(ctx, data)
}

// Republish sends the latest status again.
func (p *StatusPublisher) Republish(ctx context.Context) {
	p.mu.Lock()
	data := p.last
	p.mu.Unlock()
	if data != nil {
		p.publish(ctx, data)
	}
}

func (p *StatusPublisher) publish(ctx context.Context, data []byte) {
	if p.Client == nil || !p.Client.IsConnected() {
		return // sent again on reconnect
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = p.Client.Publish(ctx, mqtt.Message{Topic: TopicStatus, Payload: data, QoS: 1, Retained: true})
}
