package subtrack

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTracker(t *testing.T) {
	tr := New("connector", "cloud")
	steps := []struct {
		topic, line string
		want        Change
	}{
		{subscribeTopic, "1700000000: app1 1 command//ns:gw:edge:containers/req/#", Change{Subscribe: []string{"command//ns:gw:edge:containers/req/#"}}},
		{subscribeTopic, "1700000001: app2 0 c//ns:gw:edge:containers/q/#", Change{}},
		{subscribeTopic, "1700000002: cloud 1 command//ns:gw:x/req/#", Change{}},
		{subscribeTopic, "1700000003: app1 1 command//+/req/#", Change{}},
		{subscribeTopic, "1700000004: app1 1 telemetry/#", Change{}},
		{unsubTopic, "1700000005: app1 command//ns:gw:edge:containers/req/#", Change{}},
		{noticeTopic, "1700000006: Client app2 closed its connection.", Change{Unsubscribe: []string{"command//ns:gw:edge:containers/req/#"}}},
		{subscribeTopic, "1700000007: app3 1 command//ns:gw:a/req/#", Change{Subscribe: []string{"command//ns:gw:a/req/#"}}},
		{noticeTopic, "1700000008: Socket error on client app3, disconnecting.", Change{Unsubscribe: []string{"command//ns:gw:a/req/#"}}},
		{subscribeTopic, "garbage", Change{}},
	}
	for i, s := range steps {
		if diff := cmp.Diff(s.want, tr.Handle(s.topic, []byte(s.line))); diff != "" {
			t.Errorf("step %d %q: -want +got:\n%s", i, s.line, diff)
		}
	}
	if f := tr.Filters(); len(f) != 0 {
		t.Errorf("left over %v", f)
	}
}

func FuzzHandle(f *testing.F) {
	for _, s := range []string{"1700000000: app1 1 command//ns:gw:edge:containers/req/#", "1: a b", "1700000006: Client app2 closed its connection.", "1: Client x disconnected."} {
		f.Add(subscribeTopic, s)
		f.Add(unsubTopic, s)
		f.Add(noticeTopic, s)
	}
	tr := New("cloud")
	f.Fuzz(func(t *testing.T, topic, line string) {
		c := tr.Handle(topic, []byte(line))
		for _, s := range append(c.Subscribe, c.Unsubscribe...) {
			if !forwardableNormalised(s) {
				t.Fatalf("%q forwarded", s)
			}
		}
	})
}

func forwardableNormalised(s string) bool { n, ok := forwardable(s); return ok && n == s }
