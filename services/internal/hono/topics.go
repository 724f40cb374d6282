// Package hono knows the topic shapes of Eclipse Hono's MQTT adapter, which
// Kanto also uses on the device's local broker: telemetry (t), event (e),
// command requests (command//…/req/…, c//…/q/…) and responses
// (command//…/res/…, c//…/s/…).
package hono

import (
	"errors"
	"fmt"
	"strings"
)

// ErrTopic marks a topic that is not of the expected shape.
var ErrTopic = errors.New("unexpected topic")

// Kind is telemetry or event.
type Kind string

// Message kinds.
const (
	Telemetry Kind = "telemetry"
	Event     Kind = "event"
)

// Local subscription filters of a connector, as upstream.
var (
	EventFilters     = []string{"event/#", "e/#"}
	TelemetryFilters = []string{"telemetry/#", "t/#"}
	ResponseFilters  = []string{"command//+/res/#", "c//+/s/#"}
	// RequestFilter is what a gateway subscribes to on the hub.
	RequestFilter = "command//+/req/#"
)

// Data is a parsed telemetry or event topic.
type Data struct {
	Kind   Kind
	Tenant string // empty when the topic does not name it
	Device string
	Rest   string // segments after the device, joined by '/'
}

// ParseData splits a local telemetry/event topic. Segment 0 decides the
// kind: telemetry or t is telemetry, anything else event (as upstream).
func ParseData(topic string) Data {
	seg := strings.Split(topic, "/")
	d := Data{Kind: Event}
	if seg[0] == "telemetry" || seg[0] == "t" {
		d.Kind = Telemetry
	}
	if len(seg) > 1 {
		d.Tenant = seg[1]
	}
	if len(seg) > 2 {
		d.Device = seg[2]
	}
	if len(seg) > 3 {
		d.Rest = strings.Join(seg[3:], "/")
	}
	return d
}

// CloudTopic is the hub topic for d, with tenant and device defaulted.
func (d Data) CloudTopic(tenant, device string) string {
	if d.Tenant != "" {
		tenant = d.Tenant
	}
	if d.Device != "" {
		device = d.Device
	}
	t := string(d.Kind) + "/" + tenant + "/" + device
	if d.Rest != "" {
		t += "/" + d.Rest
	}
	return t
}

// Command is a parsed command request or response topic.
type Command struct {
	Short    bool   // c//… form
	Tenant   string // between command/ and the device (empty on the device side)
	Device   string
	Response bool   // res / s
	Rest     string // after req/ or res/: "<req-id>/<subject>" or "<req-id>/<status>"
}

// ParseCommand parses command//<dev>/req/<rest>, c//<dev>/q/<rest> and the
// response forms.
func ParseCommand(topic string) (Command, error) {
	var c Command
	var rest string
	switch {
	case strings.HasPrefix(topic, "command/"):
		rest = strings.TrimPrefix(topic, "command/")
	case strings.HasPrefix(topic, "c/"):
		rest, c.Short = strings.TrimPrefix(topic, "c/"), true
	default:
		return c, fmt.Errorf("%w: %q is not a command topic", ErrTopic, topic)
	}
	tenant, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return c, fmt.Errorf("%w: %q has no device segment", ErrTopic, topic)
	}
	device, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return c, fmt.Errorf("%w: %q has no direction segment", ErrTopic, topic)
	}
	dir, rest, _ := strings.Cut(rest, "/")
	c.Tenant, c.Device, c.Rest = tenant, device, rest
	switch {
	case dir == "req" && !c.Short, dir == "q" && c.Short:
	case dir == "res" && !c.Short, dir == "s" && c.Short:
		c.Response = true
	default:
		return c, fmt.Errorf("%w: %q: direction %q", ErrTopic, topic, dir)
	}
	return c, nil
}

// RequestID is the first segment of Rest.
func (c Command) RequestID() string { id, _, _ := strings.Cut(c.Rest, "/"); return id }

// Long formats the command in the long form (command/<tenant>/<dev>/req|res/<rest>).
func (c Command) Long() string {
	dir := "req"
	if c.Response {
		dir = "res"
	}
	return "command/" + c.Tenant + "/" + c.Device + "/" + dir + "/" + c.Rest
}

// ShortForm formats the command in the short form (c/<tenant>/<dev>/q|s/<rest>).
func (c Command) ShortForm() string {
	dir := "q"
	if c.Response {
		dir = "s"
	}
	return "c/" + c.Tenant + "/" + c.Device + "/" + dir + "/" + c.Rest
}

// NormalizeFilter maps a local command subscription filter onto the long
// form the hub understands: c// → command//, a trailing /q/# → /req/#.
func NormalizeFilter(f string) string {
	if strings.HasPrefix(f, "c//") {
		f = "command//" + strings.TrimPrefix(f, "c//")
	}
	if strings.HasSuffix(f, "/q/#") {
		f = strings.TrimSuffix(f, "/q/#") + "/req/#"
	}
	return f
}

// IsCommandRequestFilter reports whether f is a device command subscription
// worth forwarding to the hub: (c|command)//<printable>/(q|req)/#.
func IsCommandRequestFilter(f string) bool {
	var rest string
	switch {
	case strings.HasPrefix(f, "command//"):
		rest = strings.TrimPrefix(f, "command//")
	case strings.HasPrefix(f, "c//"):
		rest = strings.TrimPrefix(f, "c//")
	default:
		return false
	}
	var dev string
	switch {
	case strings.HasSuffix(rest, "/req/#"):
		dev = strings.TrimSuffix(rest, "/req/#")
	case strings.HasSuffix(rest, "/q/#"):
		dev = strings.TrimSuffix(rest, "/q/#")
	default:
		return false
	}
	if dev == "" {
		return false
	}
	for _, r := range dev {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

// Username is the hub user name: authId@tenant.
func Username(authID, tenant string) string { return authID + "@" + tenant }
