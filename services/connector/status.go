package connector

import "github.com/kantofw/kanto/services/internal/uplink"

// Local topics of the connector API (see package uplink for the shared ones).
const (
	TopicStatus       = uplink.TopicStatus
	TopicThingRequest = uplink.TopicThingRequest
	TopicThingReply   = uplink.TopicThingReply
	// TopicBuffer is ours: retained counters of the offline buffer.
	TopicBuffer = "edge/connection/remote/buffer"
)

// Status causes, as upstream.
const (
	CauseConfigError         = uplink.CauseConfigError
	CauseProvisioningMissing = uplink.CauseProvisioningMissing
	CauseProvisioningError   = uplink.CauseProvisioningError
	CauseProvisioningUpdate  = uplink.CauseProvisioningUpdate
	CauseConnectionError     = uplink.CauseConnectionError
	CauseNotAuthenticated    = uplink.CauseNotAuthenticated
	CauseConnectionClosed    = uplink.CauseConnectionClosed
	CauseConnectionUnknown   = uplink.CauseConnectionUnknown
)
