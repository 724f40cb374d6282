package hono

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

func corpus(t testing.TB) []string {
	f, err := os.Open("testdata/topics.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		lines = append(lines, s.Text())
	}
	return lines
}

func describe(topic string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", topic)
	if c, err := ParseCommand(topic); err != nil {
		d := ParseData(topic)
		fmt.Fprintf(&b, "  data: %s -> %s\n", d.Kind, d.CloudTopic("T", "D"))
		fmt.Fprintf(&b, "  command: %v\n", err)
	} else {
		fmt.Fprintf(&b, "  command: short=%v response=%v tenant=%q device=%q rest=%q id=%q long=%s short=%s\n",
			c.Short, c.Response, c.Tenant, c.Device, c.Rest, c.RequestID(), c.Long(), c.ShortForm())
	}
	return b.String()
}

func TestTopicsGolden(t *testing.T) {
	var b strings.Builder
	for _, l := range corpus(t) {
		b.WriteString(describe(l))
	}
	got := b.String()
	if *update {
		os.WriteFile("testdata/topics.golden", []byte(got), 0o644)
	}
	want, err := os.ReadFile("testdata/topics.golden")
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

// The rewriting table of the reference §2.2 and acceptance case 1.
func TestCloudTopic(t *testing.T) {
	tests := map[string]string{
		"e":                 "event/T/D",
		"e/":                "event/T/D",
		"event":             "event/T/D",
		"event/":            "event/T/D",
		"t":                 "telemetry/T/D",
		"t//D2":             "telemetry/T/D2",
		"event//dev2":       "event/T/dev2",
		"telemetry/T/D/x":   "telemetry/T/D/x",
		"event/T/X/testing": "event/T/X/testing",
		"event/T2/D/a/b":    "event/T2/D/a/b",
	}
	for in, want := range tests {
		if got := ParseData(in).CloudTopic("T", "D"); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
}

func TestNormalizeAndForwardable(t *testing.T) {
	tests := []struct {
		in, norm string
		fwd      bool
	}{
		{"c//ns:gw:child/q/#", "command//ns:gw:child/req/#", true},
		{"command//ns:gw/req/#", "command//ns:gw/req/#", true},
		{"command///req/#", "command///req/#", false},
		{"telemetry/#", "telemetry/#", false},
		{"command//ns:gw/res/#", "command//ns:gw/res/#", false},
	}
	for _, tt := range tests {
		if got := NormalizeFilter(tt.in); got != tt.norm {
			t.Errorf("NormalizeFilter(%q) = %q, want %q", tt.in, got, tt.norm)
		}
		if got := IsCommandRequestFilter(tt.in); got != tt.fwd {
			t.Errorf("IsCommandRequestFilter(%q) = %v, want %v", tt.in, got, tt.fwd)
		}
	}
	if got := Username("auth", "tenant"); got != "auth@tenant" {
		t.Errorf("Username = %q", got)
	}
}

func FuzzTopics(f *testing.F) {
	for _, l := range corpus(f) {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		c, err := ParseCommand(topic)
		if err == nil {
			for _, form := range []string{c.Long(), c.ShortForm()} {
				c2, err := ParseCommand(form)
				if err != nil {
					t.Fatalf("%q -> %q does not parse: %v", topic, form, err)
				}
				if c2.Device != c.Device || c2.Rest != c.Rest || c2.Response != c.Response || c2.Tenant != c.Tenant {
					t.Fatalf("%q: round trip via %q changed %+v to %+v", topic, form, c, c2)
				}
			}
		}
		d := ParseData(topic)
		if ct := d.CloudTopic("T", "D"); !strings.HasPrefix(ct, string(d.Kind)+"/") {
			t.Fatalf("cloud topic %q of %q lacks its kind", ct, topic)
		}
		_ = IsCommandRequestFilter(topic)
		_ = NormalizeFilter(topic)
	})
}
