package twins

import (
	"maps"

	"github.com/kantofw/kanto/services/internal/ditto"
)

func withHeader(h ditto.Headers, k string, v any) ditto.Headers {
	out := maps.Clone(h)
	if out == nil {
		out = ditto.Headers{}
	}
	out[k] = v
	return out
}

// responseHeaders are the command's headers with response-required false,
// plus the Ditto content type when a value is carried.
func responseHeaders(h ditto.Headers, withValue bool) ditto.Headers {
	out := withHeader(h, "response-required", false)
	if withValue {
		out["content-type"] = ditto.ContentTypeDitto
	}
	return out
}

func responseEnvelope(cmd *ditto.Envelope, res result) *ditto.Envelope {
	r := &ditto.Envelope{Topic: cmd.Topic, Path: cmd.Path, Status: res.status, Headers: responseHeaders(cmd.Headers, res.hasValue)}
	if res.hasValue {
		r.Value = marshal(res.value)
		r.Fields = cmd.Fields
	}
	return r
}

func errorEnvelope(cmd *ditto.Envelope, t ditto.Topic, e *thingError) *ditto.Envelope {
	et := ditto.Topic{Namespace: t.Namespace, Name: t.Name, Group: "things", Channel: "twin", Criterion: "errors"}
	return &ditto.Envelope{Topic: et.String(), Path: "/", Status: e.Status, Value: marshal(e), Headers: responseHeaders(cmd.Headers, true)}
}

func eventEnvelope(cmd *ditto.Envelope, t ditto.Topic, res result) *ditto.Envelope {
	et := ditto.Topic{Namespace: t.Namespace, Name: t.Name, Group: "things", Channel: "twin", Criterion: "events", Action: res.event}
	e := &ditto.Envelope{Topic: et.String(), Path: cmd.Path}
	if res.rec != nil {
		e.Revision, e.Timestamp = res.rec.Revision, res.rec.Timestamp
	}
	if res.event == "deleted" {
		e.Headers = responseHeaders(cmd.Headers, false)
		return e
	}
	e.Headers = responseHeaders(cmd.Headers, true)
	e.Value = cmd.Value
	if cmd.Path == "/" && res.event == "created" {
		e.Value = marshal(res.rec.Thing)
	}
	return e
}

// provisionedEvent announces a thing created by auto-provisioning.
func provisionedEvent(cmd *ditto.Envelope, t ditto.Topic, rec *record) *ditto.Envelope {
	et := ditto.Topic{Namespace: t.Namespace, Name: t.Name, Group: "things", Channel: "twin", Criterion: "events", Action: "created"}
	return &ditto.Envelope{Topic: et.String(), Path: "/", Value: marshal(map[string]any{"thingId": t.ThingID()}),
		Revision: 1, Timestamp: rec.Timestamp, Headers: responseHeaders(cmd.Headers, true)}
}
