package uplink

import (
	"errors"
	"testing"
	"time"
)

func TestTakeResponse(t *testing.T) {
	var c Correlations
	c.Add("known", time.Minute)
	resp := func(id string) []byte {
		return []byte(`{"topic":"ns/gw/things/live/messages/x","headers":{"correlation-id":"` + id + `"},"path":"/","status":200}`)
	}
	for _, tc := range []struct {
		name, topic string
		payload     []byte
		want        error
	}{
		{"event passes", "e", []byte("anything"), nil},
		{"telemetry passes", "telemetry", nil, nil},
		{"known response taken", "command///res/known/200", resp("known"), nil},
		{"known response only once", "command///res/known/200", resp("known"), ErrResponseUnknown},
		{"unknown response", "c///s/x/200", resp("other"), ErrResponseUnknown},
		{"response not an envelope", "command///res/r/200", []byte("not json"), ErrResponseNotEnvelope},
	} {
		err := c.TakeResponse(tc.topic, tc.payload)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
