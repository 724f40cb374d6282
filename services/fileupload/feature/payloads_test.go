package feature

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// parseAll runs every parser on data and renders what each returns.
func parseAll(data []byte) string {
	var b strings.Builder
	show := func(name string, v any, err error) {
		if err != nil {
			fmt.Fprintf(&b, "%s: error: %v\n", name, err)
			return
		}
		out, _ := json.Marshal(v)
		fmt.Fprintf(&b, "%s: %s\n", name, out)
	}
	tr, err := ParseTrigger(data)
	show("trigger", tr, err)
	st, err := ParseStart(data)
	show("start", st, err)
	ca, err := ParseCancel(data)
	show("cancel", ca, err)
	ac, err := ParseActivate(data)
	show("activate", ac, err)
	return b.String()
}

func corpus(t testing.TB) []string {
	files, _ := filepath.Glob("testdata/payloads/*.json")
	if len(files) == 0 {
		t.Fatal("no corpus")
	}
	return files
}

func TestPayloadsGolden(t *testing.T) {
	for _, f := range corpus(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := parseAll(data)
			golden := strings.TrimSuffix(f, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if diff := cmp.Diff(got, string(want)); diff != "" {
				t.Errorf("mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestParseActivateTimes(t *testing.T) {
	r, err := ParseActivate([]byte(`{"from":"2024-01-01T10:00:00Z","to":"2024-01-01T12:00:00+01:00"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.To.Sub(*r.From), time.Hour; got != want {
		t.Errorf("window %v, want %v", got, want)
	}
}

// The parsers never panic, and what they accept is consistent.
func FuzzParsePayloads(f *testing.F) {
	for _, p := range corpus(f) {
		data, _ := os.ReadFile(p)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if r, err := ParseStart(data); err == nil && strings.TrimSpace(r.CorrelationID) == "" {
			t.Errorf("start accepted without correlationId: %q", data)
		}
		if r, err := ParseCancel(data); err == nil && strings.TrimSpace(r.CorrelationID) == "" {
			t.Errorf("cancel accepted without correlationId: %q", data)
		}
		if r, err := ParseActivate(data); err == nil && r.From != nil && r.To != nil && r.To.Before(*r.From) {
			t.Errorf("activate accepted a reversed window: %q", data)
		}
		if r, err := ParseTrigger(data); err == nil {
			// What was accepted survives a round trip.
			out, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			r2, err := ParseTrigger(out)
			if err != nil || !cmp.Equal(r, r2) {
				t.Errorf("trigger round trip: %v, %+v != %+v", err, r, r2)
			}
		}
	})
}
