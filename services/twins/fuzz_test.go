package twins

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// goldenRequests are the requests of the golden corpus, seeding the fuzzers.
func goldenRequests(t testing.TB) [][]byte {
	files, _ := filepath.Glob("testdata/commands/*.json")
	var out [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var g golden
		if err := json.Unmarshal(data, &g); err != nil {
			t.Fatal(err)
		}
		for _, s := range g.Steps {
			out = append(out, s.Request)
		}
	}
	return out
}

func FuzzCommand(f *testing.F) {
	for _, r := range goldenRequests(f) {
		f.Add(r)
	}
	s, rec := newOffline(f, true)
	// u has no identity yet, so no twin database (see the package doc).
	u := New(Options{Settings: Defaults(), Now: func() time.Time { return fixedNow }})
	urec := &recorder{}
	u.out = urec
	f.Fuzz(func(t *testing.T, payload []byte) {
		s.handleRaw(context.Background(), payload)
		u.handleRaw(context.Background(), payload)
		for _, m := range append(rec.take(), urec.take()...) {
			if !json.Valid(m.Payload) {
				t.Fatalf("invalid JSON published on %s: %s", m.Topic, m.Payload)
			}
		}
		// The store must stay readable.
		ids, err := s.things.ids()
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if _, err := s.things.get(id); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzParsePath(f *testing.F) {
	for _, r := range goldenRequests(f) {
		var e struct{ Path string }
		_ = json.Unmarshal(r, &e)
		f.Add(e.Path)
	}
	f.Fuzz(func(t *testing.T, p string) {
		tg := parsePath(p)
		if tg.scope == scopeProperty && (tg.pointer == "" || tg.pointer[0] != '/') {
			t.Fatalf("%q: pointer %q", p, tg.pointer)
		}
		if (tg.scope == scopeFeature || tg.scope == scopeProperties) && tg.feature == "" {
			t.Fatalf("%q: empty feature", p)
		}
	})
}

func FuzzParseFields(f *testing.F) {
	for _, s := range []string{"thingId", "thingId,features(meter/properties)", "features(a/desiredProperties,b/desiredProperties)", "a(b(c,d),e)", "features(meter", "a)", "", ",,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := parseFields(s)
		if err != nil {
			return
		}
		doc := map[string]any{"a": map[string]any{"b": 1}, "features": map[string]any{}}
		_ = project(doc, sel)
	})
}
