package awsconnector

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/services/internal/buffer"
)

var update = flag.Bool("update", false, "rewrite testdata/mapping.json")

// mappingCase is one local message and what goes to AWS for it.
type mappingCase struct {
	Name           string                    `json:"name"`
	Cache          map[string]map[string]any `json:"cache,omitempty"`
	TopicFilter    string                    `json:"topicFilter,omitempty"`
	PayloadFilters []string                  `json:"payloadFilters,omitempty"`
	Topic          string                    `json:"topic"`
	Payload        json.RawMessage           `json:"payload"`
	Want           []out                     `json:"want"`
	Error          string                    `json:"error,omitempty"`
}

type out struct {
	Topic   string          `json:"topic"`
	Payload json.RawMessage `json:"payload"`
}

var received = time.UnixMilli(1700000000123)

func runMapping(c mappingCase) ([]out, error) {
	s := Defaults()
	s.TopicFilter, s.PayloadFilters, s.TenantID = c.TopicFilter, c.PayloadFilters, "test-tenant-id"
	cn := New(Options{Settings: s})
	cn.setIdentity("test:device")
	for name, doc := range c.Cache {
		cn.cache.merge(name, doc)
	}
	msgs, err := cn.route(&buffer.Entry{Topic: c.Topic, Payload: c.Payload, QoS: 1, Received: received})
	got := []out{}
	for _, m := range msgs {
		p := json.RawMessage(m.Payload)
		if len(p) == 0 {
			p = json.RawMessage(`""`) // an empty payload (shadow delete)
		}
		var buf bytes.Buffer
		if json.Compact(&buf, p) == nil {
			p = buf.Bytes()
		}
		got = append(got, out{Topic: m.Topic, Payload: p})
	}
	return got, err
}

func loadMapping(t testing.TB) []mappingCase {
	data, err := os.ReadFile("testdata/mapping.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []mappingCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	return cases
}

// The golden table of reference §4: shadow naming, payloads, deletes,
// modify with nulls, merge, filters, and the event path.
func TestShadowMapping(t *testing.T) {
	cases := loadMapping(t)
	for i, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			got, err := runMapping(c)
			errText := ""
			if err != nil {
				errText = err.Error()
			}
			if *update {
				cases[i].Want, cases[i].Error = got, errText
				return
			}
			norm := func(v any) any {
				b, _ := json.Marshal(v)
				var x any
				_ = json.Unmarshal(b, &x)
				return x
			}
			if diff := cmp.Diff(norm(c.Want), norm(got)); diff != "" {
				t.Errorf("-want +got:\n%s", diff)
			}
			if errText != c.Error {
				t.Errorf("error %q, want %q", errText, c.Error)
			}
		})
	}
	if *update {
		data, _ := json.MarshalIndent(cases, "", "  ")
		if err := os.WriteFile("testdata/mapping.json", append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzRoute(f *testing.F) {
	for _, c := range loadMapping(f) {
		f.Add(c.Topic, []byte(c.Payload))
	}
	s := Defaults()
	s.PayloadFilters = []string{"secret"}
	cn := New(Options{Settings: s})
	cn.setIdentity("test:device")
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		msgs, _ := cn.route(&buffer.Entry{Topic: topic, Payload: payload, QoS: 1, Received: received})
		for _, m := range msgs {
			if len(m.Payload) > 0 && !json.Valid(m.Payload) {
				t.Fatalf("invalid JSON to %s: %s", m.Topic, m.Payload)
			}
		}
	})
}
