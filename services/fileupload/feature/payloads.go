package feature

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrPayload marks an operation payload that cannot be used (a 400 reply).
var ErrPayload = errors.New("invalid operation payload")

// TriggerRequest is the value of the trigger operation.
type TriggerRequest struct {
	CorrelationID string            `json:"correlationId"`
	Options       map[string]string `json:"options"`
}

// StartRequest is the value of the start operation.
type StartRequest struct {
	CorrelationID string            `json:"correlationId"`
	Options       map[string]string `json:"options"`
}

// CancelRequest is the value of the cancel operation. StatusCode is a
// string on the wire (the docs' number fails upstream, and here).
type CancelRequest struct {
	CorrelationID string `json:"correlationId"`
	StatusCode    string `json:"statusCode"`
	Message       string `json:"message"`
}

// ActivateRequest is the value of the activate operation. A missing from
// means now; a missing to means no end (upstream crashes on it).
type ActivateRequest struct {
	From *time.Time
	To   *time.Time
}

// decode parses one JSON object into dst. null or an absent value decodes
// to the zero value when optional; anything after the object is refused.
func decode(raw []byte, dst any, optional bool) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		if optional {
			return nil
		}
		return fmt.Errorf("value missing: %w", ErrPayload)
	}
	if raw[0] != '{' {
		return fmt.Errorf("value must be a JSON object: %w", ErrPayload)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("field %q must be %s, not JSON %s: %w", te.Field, te.Type, te.Value, ErrPayload)
		}
		return fmt.Errorf("%v: %w", err, ErrPayload)
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON object: %w", ErrPayload)
	}
	return nil
}

// ParseTrigger parses a trigger value; an empty value triggers the
// configured upload.
func ParseTrigger(raw []byte) (TriggerRequest, error) {
	var r TriggerRequest
	err := decode(raw, &r, true)
	return r, err
}

// ParseStart parses a start value; correlationId is required.
func ParseStart(raw []byte) (StartRequest, error) {
	var r StartRequest
	if err := decode(raw, &r, false); err != nil {
		return r, err
	}
	if strings.TrimSpace(r.CorrelationID) == "" {
		return r, fmt.Errorf("correlationId missing: %w", ErrPayload)
	}
	return r, nil
}

// ParseCancel parses a cancel value; correlationId is required.
func ParseCancel(raw []byte) (CancelRequest, error) {
	var r CancelRequest
	if err := decode(raw, &r, false); err != nil {
		return r, err
	}
	if strings.TrimSpace(r.CorrelationID) == "" {
		return r, fmt.Errorf("correlationId missing: %w", ErrPayload)
	}
	return r, nil
}

// ParseActivate parses an activate value: RFC 3339 strings from and to.
func ParseActivate(raw []byte) (ActivateRequest, error) {
	var w struct {
		From *string `json:"from"`
		To   *string `json:"to"`
	}
	var r ActivateRequest
	if err := decode(raw, &w, true); err != nil {
		return r, err
	}
	var err error
	if r.From, err = parseTime("from", w.From); err != nil {
		return r, err
	}
	if r.To, err = parseTime("to", w.To); err != nil {
		return r, err
	}
	if r.From != nil && r.To != nil && r.To.Before(*r.From) {
		return r, fmt.Errorf("to %s is before from %s: %w", r.To.Format(time.RFC3339), r.From.Format(time.RFC3339), ErrPayload)
	}
	return r, nil
}

func parseTime(name string, s *string) (*time.Time, error) {
	if s == nil || *s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		return nil, fmt.Errorf("%s %q is not an RFC 3339 time: %w", name, *s, ErrPayload)
	}
	return &t, nil
}
