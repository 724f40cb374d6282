package twins_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kantofw/kanto/services/internal/kantotest"
)

// Events that are not twin commands for the local twins go to the cloud
// unchanged. Published while the hub is away, they wait in the offline
// buffer (upstream drops them, see the package doc) and reach the hub after
// the reconnect, in the order they were published: plain JSON, text that
// is not JSON, a live message about a child thing, a twin event, and a
// twin command on a path the local twins do not apply (/attributes).
func TestNonTwinEventsBufferedOffline(t *testing.T) {
	w := newWorld(t)
	w.start()
	_, idx := w.status.AwaitTopic(t, 0, "#", kantotest.StatusIs("connected"))

	w.adapter.Cut()
	_, idx = w.status.AwaitTopic(t, idx, "#", kantotest.StatusIs("CONNECTION_ERROR"))
	type msg struct{ local, hub, payload string }
	var want []msg
	for i := range 40 {
		var m msg
		switch i % 5 {
		case 0:
			m = msg{"e", "event/T/ns:gw", fmt.Sprintf(`{"seq":%d}`, i)}
		case 1:
			m = msg{"event", "event/T/ns:gw", fmt.Sprintf("not json %d", i)}
		case 2:
			m = msg{"event/T/ns:gw:edge:x", "event/T/ns:gw:edge:x", fmt.Sprintf(
				`{"topic":"ns/gw:edge:x/things/live/messages/hello","path":"/features/f/outbox/messages/hello","value":{"seq":%d}}`, i)}
		case 3:
			m = msg{"e/T/ns:gw:edge:y", "event/T/ns:gw:edge:y", fmt.Sprintf(
				`{"topic":"ns/gw:edge:y/things/twin/events/modified","path":"/features/f/properties/seq","value":%d}`, i)}
		case 4:
			m = msg{"e", "event/T/ns:gw", fmt.Sprintf(
				`{"topic":"ns/gw/things/twin/commands/modify","headers":{"correlation-id":"attr%d"},"path":"/attributes/seq","value":%d}`, i, i)}
		}
		want = append(want, m)
		w.publish(m.local, m.payload)
	}
	// Local messages are handled one after the other: once the answer to
	// this fence is out, every message above was taken while offline.
	w.publish("e", cmd(deviceID, "retrieve", "/", nil, "fence"))
	w.events.AwaitTopic(t, 0, "command///req//errors-response", withCorr("fence"))

	w.adapter.Restore()
	w.status.AwaitTopic(t, idx, "#", kantotest.StatusIs("connected"))
	ours := map[string]bool{}
	for _, m := range want {
		ours[m.payload] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []msg
	for {
		all := w.nb.Messages("event/#")
		got = got[:0]
		for _, m := range all {
			if ours[string(m.Payload)] {
				got = append(got, msg{hub: m.Topic, payload: string(m.Payload)})
			}
		}
		if len(got) >= len(want) {
			break
		}
		if _, err := w.nb.Await(ctx, "event/#", len(all)+1); err != nil {
			t.Fatalf("the hub got %d of %d buffered events: %v", len(got), len(want), err)
		}
	}
	if len(got) != len(want) {
		t.Errorf("the hub got %d buffered events, want %d (duplicates?)", len(got), len(want))
	}
	var diffs []string
	for i := range min(len(got), len(want)) {
		if got[i].hub != want[i].hub || got[i].payload != want[i].payload {
			diffs = append(diffs, fmt.Sprintf("#%d: got %s %s, want %s %s", i, got[i].hub, got[i].payload, want[i].hub, want[i].payload))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("buffered events out of order or changed:\n%s", strings.Join(diffs, "\n"))
	}
}
