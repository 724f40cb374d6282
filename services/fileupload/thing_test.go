package fileupload

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseThingGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/things/*.json")
	if len(files) == 0 {
		t.Fatal("no corpus")
	}
	want := map[string]string{
		"ok.json":            "org.example edge-1 t1",
		"nested-name.json":   "org.example gw:child t1",
		"no-colon.json":      "error",
		"number.json":        "error",
		"empty.json":         "error",
		"bad-namespace.json": "error",
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		must(t, err)
		th, _, err := ParseThing(data)
		got := fmt.Sprintf("%s %s %s", th.Namespace, th.Name, th.TenantID)
		if err != nil {
			got = "error"
		}
		if diff := cmp.Diff(got, want[filepath.Base(f)]); diff != "" {
			t.Errorf("%s (-got +want):\n%s", f, diff)
		}
	}
}

func FuzzParseThing(f *testing.F) {
	files, _ := filepath.Glob("testdata/things/*.json")
	for _, p := range files {
		data, _ := os.ReadFile(p)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		th, key, err := ParseThing(data)
		if err != nil {
			return
		}
		if th.Namespace+":"+th.Name == "" || strings.Contains(th.Name, "/") || !strings.HasPrefix(key, th.ID()) {
			t.Errorf("accepted %q as %+v key %q", data, th, key)
		}
	})
}
