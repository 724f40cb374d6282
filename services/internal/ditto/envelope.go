// Package ditto is the Eclipse Ditto protocol envelope as Kanto uses it on
// MQTT: topic, headers, path, value and status.
package ditto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid marks a payload that is not a Ditto envelope.
var ErrInvalid = errors.New("invalid Ditto envelope")

// Content types Kanto peers send.
const (
	ContentTypeDitto      = "application/vnd.eclipse.ditto+json"
	ContentTypeJSON       = "application/json"
	ContentTypeMergePatch = "application/merge-patch+json"
)

// DefaultTimeout is the timeout of a command without a timeout header.
const DefaultTimeout = 60 * time.Second

// Envelope is one Ditto protocol message. Value and Extra are kept as raw
// JSON so a message passes through unchanged.
type Envelope struct {
	Topic     string          `json:"topic"`
	Headers   Headers         `json:"headers,omitempty"`
	Path      string          `json:"path"`
	Value     json.RawMessage `json:"value,omitempty"`
	Fields    string          `json:"fields,omitempty"`
	Extra     json.RawMessage `json:"extra,omitempty"`
	Status    int             `json:"status,omitempty"`
	Revision  int64           `json:"revision,omitempty"`
	Timestamp string          `json:"timestamp,omitempty"`
}

// Parse decodes an envelope. Header names are lower-cased.
func Parse(data []byte) (*Envelope, error) {
	var e Envelope
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalid)
	}
	if e.Topic == "" {
		return nil, fmt.Errorf("%w: no topic", ErrInvalid)
	}
	lowered := make(Headers, len(e.Headers))
	for k, v := range e.Headers {
		lowered[strings.ToLower(k)] = v
	}
	e.Headers = lowered
	return &e, nil
}

// Marshal encodes the envelope.
func (e *Envelope) Marshal() ([]byte, error) { return json.Marshal(e) }

// Headers are the envelope's headers, lower-case names.
type Headers map[string]any

func (h Headers) str(k string) string {
	switch v := h[k].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// CorrelationID returns the correlation-id header.
func (h Headers) CorrelationID() string { return h.str("correlation-id") }

// ReplyTo returns the reply-to header.
func (h Headers) ReplyTo() string { return h.str("reply-to") }

// ContentType returns the content-type header.
func (h Headers) ContentType() string { return h.str("content-type") }

// ResponseRequired is true unless the header says false (absent = true).
func (h Headers) ResponseRequired() bool {
	switch v := h["response-required"].(type) {
	case bool:
		return v
	case string:
		b, err := strconv.ParseBool(v)
		return err != nil || b
	default:
		return true
	}
}

// Timeout parses the timeout header: "<n>" (seconds), "<n>s", "<n>ms" or
// "<n>m", in [0, 1h). ok is false when the header is absent or invalid.
func (h Headers) Timeout() (d time.Duration, ok bool) {
	return ParseTimeout(h.str("timeout"))
}

// ParseTimeout parses a Ditto timeout string (see Headers.Timeout).
func ParseTimeout(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	unit := time.Second
	num := s
	switch {
	case strings.HasSuffix(s, "ms"):
		unit, num = time.Millisecond, strings.TrimSuffix(s, "ms")
	case strings.HasSuffix(s, "s"):
		num = strings.TrimSuffix(s, "s")
	case strings.HasSuffix(s, "m"):
		unit, num = time.Minute, strings.TrimSuffix(s, "m")
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > int64(time.Hour/unit) {
		return 0, false
	}
	d := time.Duration(n) * unit
	if d >= time.Hour {
		return 0, false
	}
	return d, true
}

// Topic is a parsed Ditto topic.
type Topic struct {
	Namespace string
	Name      string
	Group     string // things, policies
	Channel   string // twin, live (things only)
	Criterion string // commands, events, messages, errors, search
	Action    string // optional (messages carry a subject here)
}

// ParseTopic splits "<ns>/<name>/things/<channel>/<criterion>[/<action>...]"
// or "<ns>/<name>/policies/<criterion>[/<action>]".
func ParseTopic(s string) (Topic, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 4 {
		return Topic{}, fmt.Errorf("%w: topic %q has too few segments", ErrInvalid, s)
	}
	t := Topic{Namespace: parts[0], Name: parts[1], Group: parts[2]}
	switch t.Group {
	case "things":
		if len(parts) < 5 {
			return Topic{}, fmt.Errorf("%w: things topic %q needs a channel and criterion", ErrInvalid, s)
		}
		t.Channel, t.Criterion = parts[3], parts[4]
		if t.Channel != "twin" && t.Channel != "live" && t.Channel != "none" {
			return Topic{}, fmt.Errorf("%w: unknown channel %q", ErrInvalid, t.Channel)
		}
		t.Action = strings.Join(parts[5:], "/")
	case "policies":
		t.Criterion = parts[3]
		t.Action = strings.Join(parts[4:], "/")
	default:
		return Topic{}, fmt.Errorf("%w: unknown group %q", ErrInvalid, t.Group)
	}
	return t, nil
}

// String formats the topic.
func (t Topic) String() string {
	parts := []string{t.Namespace, t.Name, t.Group}
	if t.Group == "things" {
		parts = append(parts, t.Channel)
	}
	parts = append(parts, t.Criterion)
	if t.Action != "" {
		parts = append(parts, t.Action)
	}
	return strings.Join(parts, "/")
}

// ThingID returns "<ns>:<name>".
func (t Topic) ThingID() string { return t.Namespace + ":" + t.Name }

var (
	nsRe   = regexp.MustCompile(`^(|[a-zA-Z]\w*(?:[.-][a-zA-Z]\w*)*)$`)
	nameRe = regexp.MustCompile(`^[^\x00-\x1F\x7F-\xFF/]+$`)
)

// SplitID splits a namespaced id "ns:name" at the first colon and checks
// both parts; "ns:gw:child" has namespace "ns" and name "gw:child".
func SplitID(id string) (ns, name string, err error) {
	ns, name, ok := strings.Cut(id, ":")
	if !ok {
		return "", "", fmt.Errorf("%w: %q is not a namespaced id (want <namespace>:<name>)", ErrInvalid, id)
	}
	if !nsRe.MatchString(ns) {
		return "", "", fmt.Errorf("%w: namespace %q of %q must be dot- or dash-separated words starting with a letter", ErrInvalid, ns, id)
	}
	if !nameRe.MatchString(name) {
		return "", "", fmt.Errorf("%w: name %q of %q must be non-empty without '/' or control characters", ErrInvalid, name, id)
	}
	return ns, name, nil
}
