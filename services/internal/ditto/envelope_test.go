package ditto

import (
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

// describe renders what a consumer sees of a payload, for golden files.
func describe(data []byte) string {
	e, err := Parse(data)
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "topic: %s\npath: %s\nstatus: %d\n", e.Topic, e.Path, e.Status)
	fmt.Fprintf(&b, "correlation-id: %q\nreply-to: %q\ncontent-type: %q\nresponse-required: %v\n",
		e.Headers.CorrelationID(), e.Headers.ReplyTo(), e.Headers.ContentType(), e.Headers.ResponseRequired())
	d, ok := e.Headers.Timeout()
	fmt.Fprintf(&b, "timeout: %v %v\n", d, ok)
	if tp, err := ParseTopic(e.Topic); err != nil {
		fmt.Fprintf(&b, "topic error: %v\n", err)
	} else {
		fmt.Fprintf(&b, "thing: %s group=%s channel=%s criterion=%s action=%s\n", tp.ThingID(), tp.Group, tp.Channel, tp.Criterion, tp.Action)
		if tp.String() != e.Topic {
			fmt.Fprintf(&b, "topic does not round trip: %s\n", tp.String())
		}
	}
	out, err := e.Marshal()
	if err != nil {
		fmt.Fprintf(&b, "marshal error: %v\n", err)
	}
	fmt.Fprintf(&b, "marshal: %s\n", out)
	return b.String()
}

func TestEnvelopeGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/envelopes/*.json")
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
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/envelopes/*.json")
	for _, p := range files {
		data, _ := os.ReadFile(p)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Parse(data)
		if err != nil {
			return
		}
		out, err := e.Marshal()
		if err != nil {
			t.Fatalf("parsed envelope does not marshal: %v", err)
		}
		e2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if e2.Topic != e.Topic || e2.Path != e.Path || e2.Status != e.Status {
			t.Fatalf("round trip changed the envelope: %+v vs %+v", e, e2)
		}
		_, _ = ParseTopic(e.Topic)
		_, _ = e.Headers.Timeout()
	})
}

func TestParseTimeout(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"30", 30 * time.Second, true},
		{"30s", 30 * time.Second, true},
		{"250ms", 250 * time.Millisecond, true},
		{"59m", 59 * time.Minute, true},
		{"60m", 0, false},
		{"3600", 0, false},
		{"-1", 0, false},
		{"abc", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseTimeout(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseTimeout(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSplitID(t *testing.T) {
	tests := []struct {
		id, ns, name string
		ok           bool
	}{
		{"ns:gw", "ns", "gw", true},
		{"ns:gw:child", "ns", "gw:child", true},
		{"org.eclipse-kanto:x", "org.eclipse-kanto", "x", true},
		{":x", "", "x", true},
		{"nocolon", "", "", false},
		{"1ns:x", "", "", false},
		{"ns:", "", "", false},
		{"ns:a/b", "", "", false},
	}
	for _, tt := range tests {
		ns, name, err := SplitID(tt.id)
		if (err == nil) != tt.ok || ns != tt.ns || name != tt.name {
			t.Errorf("SplitID(%q) = %q, %q, %v", tt.id, ns, name, err)
		}
	}
}
