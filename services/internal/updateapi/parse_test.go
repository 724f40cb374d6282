package updateapi

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "rewrite golden files")

// describe renders what the update manager makes of a desired state message.
func describe(data []byte) string {
	var b strings.Builder
	env, err := ParseEnvelope(data)
	if err != nil {
		fmt.Fprintf(&b, "envelope error: %v\npeek activityId: %q\n", err, PeekActivityID(data))
		return b.String()
	}
	fmt.Fprintf(&b, "activityId: %q timestamp: %d\n", env.ActivityID, env.Timestamp)
	ds, err := ParseDesiredState(env.Payload)
	if err != nil {
		fmt.Fprintf(&b, "desired state error: %v\n", err)
		return b.String()
	}
	parts := ds.SplitPerDomains()
	names := make([]string, 0, len(parts))
	for n := range parts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out, _ := json.Marshal(parts[n])
		fmt.Fprintf(&b, "%s: %s\n", n, out)
	}
	return b.String()
}

func TestDesiredStateGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/desiredstates/*.json")
	if len(files) == 0 {
		t.Fatal("no corpus")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got := describe(data)
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
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("golden mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzDesiredState(f *testing.F) {
	files, _ := filepath.Glob("testdata/desiredstates/*.json")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvelope(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("uncategorised error %v", err)
			}
			return
		}
		ds, err := ParseDesiredState(env.Payload)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("uncategorised error %v", err)
			}
			return
		}
		// A valid desired state round-trips and splits without loss.
		out, err := json.Marshal(ds)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseDesiredState(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if diff := cmp.Diff(ds, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		if got, want := len(ds.SplitPerDomains()), len(ds.Domains); got != want {
			t.Fatalf("split gave %d domains, want %d", got, want)
		}
	})
}

func FuzzFeedback(f *testing.F) {
	f.Add([]byte(`{"status":"IDENTIFIED","actions":[{"component":{"id":"containers:a","version":"1"},"status":"IDENTIFIED","progress":5}]}`))
	f.Add([]byte(`{"status":""}`))
	f.Add([]byte(`{"command":"download"}`))
	f.Add([]byte(`{"hardwareNodes":[{"id":"x"}],"softwareNodes":[{"id":"y","type":"IMAGE"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, err := range []error{
			func() error { _, err := ParseFeedback(data); return err }(),
			func() error { _, err := ParseCommand(data); return err }(),
			func() error { _, err := ParseInventory(data); return err }(),
		} {
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("uncategorised error %v", err)
			}
		}
	})
}

func TestTopicPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"containers":  "containersupdate",
		"self-update": "selfupdate",
		"device":      "deviceupdate",
		"firmware":    "firmwareupdate",
		"a-b-c":       "abcupdate",
	} {
		if got := TopicPrefix(in); got != want {
			t.Errorf("TopicPrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEnvelopeNullPayload(t *testing.T) {
	b, err := NewEnvelope("x", time.UnixMilli(42), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"activityId":"x","timestamp":42,"payload":null}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestParseCommand(t *testing.T) {
	c, err := ParseCommand([]byte(`{"command":"update"}`))
	if err != nil || c.Command != CommandUpdate {
		t.Fatalf("got %v %v", c, err)
	}
	if _, err := ParseCommand([]byte(`{"command":"COMMIT"}`)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("COMMIT: got %v", err)
	}
}

func TestHugeDesiredState(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"domains":[{"id":"containers","components":[`)
	for i := range MaxComponents + 1 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":"c%d"}`, i)
	}
	b.WriteString(`]}]}`)
	if _, err := ParseDesiredState([]byte(b.String())); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too many components: got %v", err)
	}
	big := make([]byte, MaxMessageSize+1)
	if _, err := ParseEnvelope(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge envelope: got %v", err)
	}
}
