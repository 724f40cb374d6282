package awsconnector

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/services/internal/mqtt"
)

// The cache follows AWS's accepted documents: merges with nulls deleting,
// a null reported or a delete clearing, bad documents ignored.
func TestShadowCacheFollowsAccepted(t *testing.T) {
	c := New(Options{})
	c.setIdentity("test:device")
	feed := func(topic, payload string) {
		c.onShadow(context.Background(), mqtt.Message{Topic: "$aws/things/test:device/shadow/" + topic, Payload: []byte(payload)})
	}
	feed("name/f/update/accepted", `{"state":{"reported":{"a":1,"o":{"x":1,"y":2}}},"version":1}`)
	feed("name/f/update/accepted", `{"state":{"reported":{"o":{"x":null}}},"version":2}`)
	feed("name/f/update/accepted", `not json`)
	feed("name/f/update/accepted", `{"state":{"desired":{"z":1}}}`)
	feed("update/accepted", `{"state":{"reported":{"attr":true}}}`)
	if diff := cmp.Diff(map[string]any{"a": jsonNum("1"), "o": map[string]any{"y": jsonNum("2")}}, c.cache.get("f")); diff != "" {
		t.Errorf("named shadow -want +got:\n%s", diff)
	}
	feed("name/f/delete/accepted", `{"version":3}`)
	feed("update/accepted", `{"state":{"reported":null}}`)
	if c.cache.get("f") != nil || c.cache.get("") != nil {
		t.Errorf("cache not cleared: %v %v", c.cache.get("f"), c.cache.get(""))
	}
}

func FuzzShadowAccepted(f *testing.F) {
	for _, s := range []string{`{"state":{"reported":{"a":1}}}`, `{"state":{"reported":null}}`, `{"state":{}}`, `{}`, `[]`, `{"state":{"reported":{"o":{"x":null}}}}`} {
		f.Add("name/f/update/accepted", []byte(s))
		f.Add("update/accepted", []byte(s))
	}
	c := New(Options{})
	c.setIdentity("test:device")
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		c.onShadow(context.Background(), mqtt.Message{Topic: "$aws/things/test:device/shadow/" + topic, Payload: payload})
		_ = c.cache.get("f")
	})
}

func jsonNum(s string) any { v, _ := decodeJSON([]byte(s)); return v }
