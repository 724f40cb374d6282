package twins

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/kantofw/kanto/services/internal/uplink"
)

// Before the device has an identity there is no twin database: commands
// for the local twins are refused with upstream's "unknown" error (when a
// response is required), an unparsable value still gets json.invalid, and
// commands the twins never apply go on to the buffer (handled false).
func TestTwinCommandsWithoutIdentity(t *testing.T) {
	st := Defaults()
	st.TenantID = "T" // no deviceId: not identified
	s := New(Options{Settings: st, Env: uplink.Env{PublishAckTimeout: time.Second}, Now: func() time.Time { return fixedNow }})
	rec := &recorder{}
	s.out = rec
	for _, tc := range []struct {
		name, request string
		handled       bool
		topic, error  string // the local answer; "" for none
	}{
		{"feature modify", `{"topic":"ns/dev/things/twin/commands/modify","path":"/features/f","value":{"properties":{"x":1}}}`,
			true, "command//ns:dev/req//errors-response", "unknown"},
		{"thing retrieve", `{"topic":"ns/dev:child/things/twin/commands/retrieve","path":"/"}`,
			true, "command//ns:dev:child/req//errors-response", "unknown"},
		{"multi retrieve", `{"topic":"_/_/things/twin/commands/retrieve","path":"/","value":{"thingIds":["ns:dev"]}}`,
			true, "command//_:_/req//errors-response", "unknown"},
		{"no response required", `{"topic":"ns/dev/things/twin/commands/delete","path":"/features/f","headers":{"response-required":false}}`,
			true, "", ""},
		{"value not a thing", `{"topic":"ns/dev/things/twin/commands/modify","path":"/","value":"x"}`,
			true, "command//ns:dev/req//errors-response", "json.invalid"},
		{"attributes: cloud only", `{"topic":"ns/dev/things/twin/commands/modify","path":"/attributes/a","value":1}`,
			false, "", ""},
		{"merge: cloud only", `{"topic":"ns/dev/things/twin/commands/merge","path":"/features/f","value":{}}`,
			false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.handleRaw(context.Background(), []byte(tc.request)); got != tc.handled {
				t.Errorf("handled %v, want %v", got, tc.handled)
			}
			out := rec.take()
			if tc.topic == "" {
				if len(out) != 0 {
					t.Errorf("published %s %s, want nothing", out[0].Topic, out[0].Payload)
				}
				return
			}
			if len(out) != 1 || out[0].Topic != tc.topic {
				t.Fatalf("published %v, want one message on %s", out, tc.topic)
			}
			var e struct {
				Status int
				Value  thingError
			}
			if err := json.Unmarshal(out[0].Payload, &e); err != nil {
				t.Fatal(err)
			}
			if e.Status != 400 || e.Value.Error != tc.error {
				t.Errorf("answer %s, want status 400 error %s", out[0].Payload, tc.error)
			}
		})
	}
	if s.identified() {
		t.Error("identified without a twin database")
	}
}
