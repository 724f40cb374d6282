package updateapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Error categories. A caller reports ErrInvalid as IDENTIFICATION_FAILED
// with the message; ErrTooLarge likewise, before anything is parsed.
var (
	ErrInvalid  = errors.New("invalid update message")
	ErrTooLarge = errors.New("update message too large")
)

// Limits of what a device accepts. Upstream has none; a desired state this
// large is an error on the sender's side, not something to apply.
const (
	MaxMessageSize = 1 << 20 // bytes of one MQTT payload
	MaxDomains     = 64
	MaxComponents  = 1024 // per domain
	MaxBaselines   = 256
	MaxIDLength    = 256
)

// NewEnvelope builds an envelope around payload (nil gives a null payload).
func NewEnvelope(activityID string, now time.Time, payload any) ([]byte, error) {
	var raw json.RawMessage
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return nil, err
		}
		raw = b
	}
	return json.Marshal(Envelope{ActivityID: activityID, Timestamp: now.UnixMilli(), Payload: raw})
}

// ParseEnvelope decodes an envelope leniently as upstream does (unknown
// keys ignored, case-insensitive names) but refuses oversize input and
// anything that is not one JSON object.
func ParseEnvelope(data []byte) (*Envelope, error) {
	if len(data) > MaxMessageSize {
		return nil, fmt.Errorf("%d bytes, limit %d: %w", len(data), MaxMessageSize, ErrTooLarge)
	}
	var e Envelope
	if err := decodeStrictOne(data, &e); err != nil {
		return nil, err
	}
	if bytes.Equal(bytes.TrimSpace(e.Payload), []byte("null")) {
		e.Payload = nil
	}
	return &e, nil
}

// PeekActivityID extracts the top-level activityId of a payload that may
// not parse as a whole (broken later on, or too large), so an error can
// still be reported under it. It reads tokens only up to that key.
func PeekActivityID(data []byte) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		key, _ := t.(string)
		if strings.EqualFold(key, "activityId") {
			var id string
			if dec.Decode(&id) != nil {
				return ""
			}
			return id
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return ""
		}
	}
	return ""
}

func decodeStrictOne(data []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("not valid JSON: %v: %w", err, ErrInvalid)
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON value: %w", ErrInvalid)
	}
	return nil
}

// ParseDesiredState decodes and validates a desired state payload. The
// checks go beyond upstream (which applies whatever unmarshals): domain and
// component IDs must be present and unique, config keys non-empty, baseline entries must be
// "<domain>:<id>" of a listed component, and sizes are bounded. Nothing is
// applied from a desired state that fails here.
func ParseDesiredState(raw []byte) (*DesiredState, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, fmt.Errorf("desired state is missing: %w", ErrInvalid)
	}
	if len(raw) > MaxMessageSize {
		return nil, fmt.Errorf("desired state of %d bytes, limit %d: %w", len(raw), MaxMessageSize, ErrTooLarge)
	}
	var ds DesiredState
	if err := decodeStrictOne(raw, &ds); err != nil {
		return nil, fmt.Errorf("desired state: %w", err)
	}
	if err := ds.Validate(); err != nil {
		return nil, err
	}
	return &ds, nil
}

// Validate checks the structural rules listed at ParseDesiredState.
func (ds *DesiredState) Validate() error {
	if len(ds.Domains) > MaxDomains {
		return fmt.Errorf("%d domains, limit %d: %w", len(ds.Domains), MaxDomains, ErrTooLarge)
	}
	if len(ds.Baselines) > MaxBaselines {
		return fmt.Errorf("%d baselines, limit %d: %w", len(ds.Baselines), MaxBaselines, ErrInvalid)
	}
	comps := map[string]bool{}
	domains := map[string]bool{}
	for i, d := range ds.Domains {
		if err := checkID(d.ID); err != nil {
			return fmt.Errorf("domains[%d].id: %w", i, err)
		}
		if domains[d.ID] {
			return fmt.Errorf("duplicate domain %q: %w", d.ID, ErrInvalid)
		}
		domains[d.ID] = true
		if len(d.Components) > MaxComponents {
			return fmt.Errorf("domain %q has %d components, limit %d: %w", d.ID, len(d.Components), MaxComponents, ErrTooLarge)
		}
		for j, c := range d.Components {
			if err := checkID(c.ID); err != nil {
				return fmt.Errorf("domain %q components[%d].id: %w", d.ID, j, err)
			}
			key := d.ID + ":" + c.ID
			if comps[key] {
				return fmt.Errorf("duplicate component %q in domain %q: %w", c.ID, d.ID, ErrInvalid)
			}
			comps[key] = true
			if err := checkKeys(c.Config); err != nil {
				return fmt.Errorf("component %q config: %w", key, err)
			}
		}
		if err := checkKeys(d.Config); err != nil {
			return fmt.Errorf("domain %q config: %w", d.ID, err)
		}
	}
	for i, b := range ds.Baselines {
		for _, c := range b.Components {
			dom, _, ok := strings.Cut(c, ":")
			if !ok {
				return fmt.Errorf("baselines[%d] component %q is not <domain>:<id>: %w", i, c, ErrInvalid)
			}
			if !domains[dom] {
				return fmt.Errorf("baselines[%d] component %q names domain %q, which is not in the desired state: %w", i, c, dom, ErrInvalid)
			}
		}
	}
	return nil
}

func checkID(id string) error {
	switch {
	case strings.TrimSpace(id) == "":
		return fmt.Errorf("empty id: %w", ErrInvalid)
	case len(id) > MaxIDLength:
		return fmt.Errorf("id of %d bytes, limit %d: %w", len(id), MaxIDLength, ErrInvalid)
	}
	return nil
}

// checkKeys refuses empty keys. Keys may repeat: the containers domain
// reads env, cmd, port, device and mount as repeatable keys.
func checkKeys(kvs []KeyValue) error {
	for _, kv := range kvs {
		if kv.Key == "" {
			return fmt.Errorf("empty key: %w", ErrInvalid)
		}
	}
	return nil
}

// ParseCommand decodes a desired state command payload.
func ParseCommand(raw []byte) (*DesiredStateCommand, error) {
	var c DesiredStateCommand
	if err := decodeStrictOne(raw, &c); err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	c.Command = CommandType(strings.ToUpper(string(c.Command)))
	if !ValidCommand(c.Command) {
		return nil, fmt.Errorf("unknown command %q: %w", c.Command, ErrInvalid)
	}
	return &c, nil
}

// ParseFeedback decodes a desired state feedback payload.
func ParseFeedback(raw []byte) (*Feedback, error) {
	var f Feedback
	if err := decodeStrictOne(raw, &f); err != nil {
		return nil, fmt.Errorf("feedback: %w", err)
	}
	if f.Status == "" {
		return nil, fmt.Errorf("feedback without status: %w", ErrInvalid)
	}
	return &f, nil
}

// ParseInventory decodes a current state payload; null is an empty one.
func ParseInventory(raw []byte) (*Inventory, error) {
	var inv Inventory
	if len(bytes.TrimSpace(raw)) == 0 {
		return &inv, nil
	}
	if err := decodeStrictOne(raw, &inv); err != nil {
		return nil, fmt.Errorf("current state: %w", err)
	}
	return &inv, nil
}
