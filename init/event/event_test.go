package event

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLineParse(t *testing.T) {
	l := Line(Unhealthy, "slot", "B", "reason", "service conn not ready")
	if want := "KANTO-EVENT unhealthy slot=B reason=service_conn_not_ready"; l != want {
		t.Fatalf("Line() = %q, want %q", l, want)
	}
	got, ok := Parse("[    3.100000] " + l + "\r")
	if !ok {
		t.Fatal("Parse() found no marker")
	}
	want := Parsed{Name: Unhealthy, KV: map[string]string{"slot": "B", "reason": "service_conn_not_ready"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse() (-want +got):\n%s", diff)
	}
	if _, ok := Parse("GRUB-START"); ok {
		t.Error("Parse() found a marker in a plain line")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Line(ServicesUp, "slot", "A"))
	f.Add("KANTO-EVENT ")
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := Parse(s)
		if ok && p.Name == "" {
			t.Fatal("empty name")
		}
	})
}
