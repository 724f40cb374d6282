package connector

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/kantofw/kanto/services/internal/mqtt"
)

// Local topics of the connector API.
const (
	TopicStatus       = "edge/connection/remote/status"
	TopicThingRequest = "edge/thing/request"
	TopicThingReply   = "edge/thing/response"
	// TopicBuffer is ours: retained counters of the offline buffer.
	TopicBuffer = "edge/connection/remote/buffer"
)

// Status causes, as upstream.
const (
	CauseConfigError         = "CONFIG_ERROR"
	CauseProvisioningMissing = "PROVISIONING_MISSING"
	CauseProvisioningError   = "PROVISIONING_ERROR"
	CauseProvisioningUpdate  = "PROVISIONING_UPDATE"
	CauseConnectionError     = "CONNECTION_ERROR"
	CauseNotAuthenticated    = "CONNECTION_NOT_AUTHENTICATED"
	CauseConnectionClosed    = "CONNECTION_CLOSED"
	CauseConnectionUnknown   = "CONNECTION_UNKNOWN"
)

// Status is the payload of edge/connection/remote/status.
type Status struct {
	Connected bool   `json:"connected"`
	Timestamp int64  `json:"timestamp,omitempty"`
	Cause     string `json:"cause,omitempty"`
}

// willPayload is the LWT: no timestamp, as upstream.
var willPayload = []byte(`{"connected":false,"cause":"CONNECTION_UNKNOWN"}`)

// statusPublisher publishes retained statuses and re-publishes the latest
// one whenever the local connection comes back, so the broker never keeps
// the LWT once the connector is alive again.
type statusPublisher struct {
	client *mqtt.Client
	now    func() time.Time

	mu   sync.Mutex
	last []byte
}

func (p *statusPublisher) send(ctx context.Context, cause string) {
	s := Status{Connected: cause == "", Timestamp: p.now().Unix(), Cause: cause}
	data, _ := json.Marshal(s)
	p.mu.Lock()
	p.last = data
	p.mu.Unlock()
	p.publish(ctx, data)
}

func (p *statusPublisher) republish(ctx context.Context) {
	p.mu.Lock()
	data := p.last
	p.mu.Unlock()
	if data != nil {
		p.publish(ctx, data)
	}
}

func (p *statusPublisher) publish(ctx context.Context, data []byte) {
	if !p.client.IsConnected() {
		return // sent again on reconnect
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = p.client.Publish(ctx, mqtt.Message{Topic: TopicStatus, Payload: data, QoS: 1, Retained: true})
}
