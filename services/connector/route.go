package connector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kantofw/kanto/services/internal/hono"
)

// ErrRoute marks a message that cannot be mapped to a cloud topic; it is
// set aside rather than retried.
var ErrRoute = errors.New("cannot route message")

// routes maps local topics to hub topics and back, for one launch's
// settings.
type routes struct {
	tenant, device string
	generic        bool
	env            Env
}

// toCloud maps a buffered local message to its hub topic and payload.
func (r routes) toCloud(topic string, payload []byte, received time.Time) (string, []byte, error) {
	if c, err := hono.ParseCommand(topic); err == nil && c.Response {
		if !r.generic {
			c.Short, c.Tenant = false, ""
			return c.Long(), payload, nil
		}
		dev, err := r.strip(c.Device)
		if err != nil {
			return "", nil, err
		}
		return prefixed(r.env.ResponsePrefix, "command/"+r.tenant+"/"+r.device+"/"+dev+"/res/"+c.Rest), payload, nil
	}
	d := hono.ParseData(topic)
	if !r.generic {
		return d.CloudTopic(r.tenant, r.device), payload, nil
	}
	dev, err := r.strip(d.Device)
	if err != nil {
		return "", nil, err
	}
	t := string(d.Kind) + "/" + r.tenant + "/" + r.device + "/" + dev
	if d.Rest != "" {
		t += "/" + d.Rest
	}
	if d.Kind == hono.Telemetry {
		return prefixed(r.env.TelemetryPrefix, t), payload, nil
	}
	stamped, err := withTimestamp(payload, received)
	if err != nil {
		return "", nil, err
	}
	return prefixed(r.env.EventsPrefix, t), stamped, nil
}

// strip removes the gateway prefix from a device id (generic mode): the
// gateway itself becomes "", gw:child becomes child.
func (r routes) strip(dev string) (string, error) {
	if dev == "" || dev == r.device {
		return "", nil
	}
	if rest, ok := strings.CutPrefix(dev, r.device+":"); ok {
		return rest, nil
	}
	return "", fmt.Errorf("%w: device %q is not %q or below it", ErrRoute, dev, r.device)
}

// commandToLocal maps a hub command topic onto the local long form.
func (r routes) commandToLocal(topic string) (string, error) {
	if !r.generic {
		c, err := hono.ParseCommand(topic)
		if err != nil || c.Response {
			return "", fmt.Errorf("%w: %q is not a command request", ErrRoute, topic)
		}
		return topic, nil
	}
	// command/<tenant>/<gw>/<dev>/req/<rest>
	parts := strings.SplitN(topic, "/", 6)
	if len(parts) < 5 || parts[0] != "command" || parts[4] != "req" {
		return "", fmt.Errorf("%w: %q is not a generic command request", ErrRoute, topic)
	}
	rest := ""
	if len(parts) == 6 {
		rest = parts[5]
	}
	if parts[3] == "" {
		return "command///req/" + rest, nil
	}
	return "command//" + parts[2] + ":" + parts[3] + "/req/" + rest, nil
}

func prefixed(prefix, topic string) string {
	if prefix == "" {
		return topic
	}
	return strings.TrimSuffix(prefix, "/") + "/" + topic
}

// withTimestamp sets headers.x-timestamp (Unix ms) in a JSON object.
func withTimestamp(payload []byte, t time.Time) ([]byte, error) {
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, fmt.Errorf("%w: event payload is not a JSON object", ErrRoute)
	}
	headers := map[string]any{}
	if raw, ok := obj["headers"]; ok && string(raw) != "null" {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&headers); err != nil {
			return nil, fmt.Errorf("%w: headers are not an object", ErrRoute)
		}
	}
	headers["x-timestamp"] = t.UnixMilli()
	h, _ := json.Marshal(headers)
	obj["headers"] = h
	return json.Marshal(obj)
}
