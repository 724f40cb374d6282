package awsiot

import (
	"encoding/json"
	"testing"
	"time"
)

var updateSeeds = []string{
	`{"state":{"reported":{"a":1,"o":{"x":1,"y":2}}},"clientToken":"t1"}`,
	`{"state":{"reported":{"o":{"x":null},"arr":[1,2]}}}`,
	`{"state":{"desired":{"a":5},"reported":null}}`,
	`{"state":{"reported":{"a":2}},"version":1}`,
	`{"clientToken":"x"}`,
	`{"state":[]}`,
	`{"state":{"other":{}}}`,
	`not json`,
	``,
}

func FuzzShadowUpdate(f *testing.F) {
	for _, s := range updateSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var sh Shadow
		for range 2 {
			acc, docs, delta, err := sh.update(payload, 8192, time.Unix(1, 0))
			if err != nil {
				return
			}
			for _, v := range []any{acc, docs, delta} {
				if _, err := json.Marshal(v); err != nil {
					t.Fatal(err)
				}
			}
			if sh.Version < 1 {
				t.Fatalf("version %d after an accepted update", sh.Version)
			}
		}
		_ = sh.document(true)
	})
}

func FuzzShadowTopic(f *testing.F) {
	for _, s := range []string{"$aws/things/ns:dev/shadow/update", "$aws/things/ns:dev/shadow/name/meter/get", "$aws/things//shadow/update", "$aws/things/x/shadow/name//update", "other"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		thing, name, op, err := shadowTopic(topic)
		if err != nil {
			return
		}
		if thing == "" || ShadowPrefix(thing, name)+"/"+op != topic {
			t.Fatalf("%q -> %q %q %q", topic, thing, name, op)
		}
	})
}
