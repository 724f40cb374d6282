package twins

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Bad input gets the documented error responses and leaves the stored
// thing exactly as it was.
func TestBadInputLeavesStoreUnchanged(t *testing.T) {
	s, rec := newOffline(t, true)
	ctx := context.Background()
	s.handleRaw(ctx, []byte(`{"topic":"ns/dev/things/twin/commands/create","path":"/","value":{"features":{"f":{"properties":{"a":1}}}}}`))
	before, _ := s.things.get("ns:dev")
	rec.take()
	cases := []struct {
		payload string
		want    string // error code, "" for no response
	}{
		{`{"topic":"ns/dev/things/twin/commands/modify","path":"/features/f/properties","value":[1]}`, "json.invalid"},
		{`{"topic":"ns/dev/things/twin/commands/modify","path":"/features/f","value":{"properties":"x"}}`, "json.invalid"},
		{`{"topic":"ns/dev/things/twin/commands/modify","path":"/features","value":{"g":1}}`, "json.invalid"},
		{`{"topic":"ns/dev/things/twin/commands/modify","path":"/","value":"thing"}`, "json.invalid"},
		{`{"topic":"ns/dev/things/twin/commands/modify","path":"/","value":{"thingId":"ns:x"}}`, "things:id.notsettable"},
		{`{"topic":"ns/dev/things/twin/commands/modify","path":"/features/f","value":{"properties":{}} trailing}`, ""},
		{`{"topic":"ns/dev/things/twin/commands/delete","path":"/features/nope"}`, "things:feature.notfound"},
		{`{"topic":"ns/dev/things/twin/commands/delete","path":"/features/f/properties/nope"}`, "things:feature.property.notfound"},
		{`{"topic":"ns/dev/things/twin/commands/delete","path":"/features/f/desiredProperties"}`, "things:feature.desiredProperties.notfound"},
		{`{"topic":"ns/dev/things/twin/commands/retrieve","path":"/","fields":"features("}`, "json.fieldselector.invalid"},
		{`{"topic":"ns/dev/things/twin/commands/modify","path":"/features/f/bogus","value":1}`, ""},
		{`not json at all`, ""},
		{`{"path":"/"}`, ""},
		{`{"topic":"ns/dev/things/twin/commands/modify","path":"/features/f/properties/a","value":}`, ""},
	}
	for _, c := range cases {
		s.handleRaw(ctx, []byte(c.payload))
		out := rec.take()
		var codes []string
		for _, m := range out {
			var e struct {
				Value struct{ Error string } `json:"value"`
			}
			_ = json.Unmarshal(m.Payload, &e)
			codes = append(codes, e.Value.Error)
		}
		var want []string
		if c.want != "" {
			want = []string{c.want}
		}
		if diff := cmp.Diff(want, codes); diff != "" {
			t.Errorf("%s: error codes -want +got:\n%s", c.payload, diff)
		}
	}
	after, _ := s.things.get("ns:dev")
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("store changed by bad input -before +after:\n%s", diff)
	}
}
