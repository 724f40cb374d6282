package bb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSample(t *testing.T) {
	data, err := os.ReadFile("testdata/sample.bb")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	vars := Vars(f)
	for _, c := range []struct{ name, want string }{
		{"SUMMARY", "sample"},
		{"SRC_URI", "file://a.service file://b.json;subdir=x file://c"},
		{"DEPENDS", "soft"},
		{"GOBUILDFLAGS", "-v -trimpath"},
		{"do_compile[network]", "1"},
		{"GOPROXY", "off"},
	} {
		if got := strings.Join(strings.Fields(vars[c.name]), " "); got != c.want {
			t.Errorf("%s = %q, want %q", c.name, got, c.want)
		}
	}
	if diff := cmp.Diff(f.Inherits, []string{"go-mod", "systemd"}); diff != "" {
		t.Errorf("inherits (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(f.Includes, []string{"sample.inc"}); diff != "" {
		t.Errorf("includes (-got +want):\n%s", diff)
	}
	if len(f.Funcs) != 2 || f.Funcs[0].Name != "do_install" || !f.Funcs[1].Python {
		t.Errorf("funcs = %+v", f.Funcs)
	}
	uris := ParseURIs(vars["SRC_URI"])
	if len(uris) != 3 || uris[1].Path != "b.json" || uris[1].Params["subdir"] != "x" {
		t.Errorf("uris = %+v", uris)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"FOO = unquoted\n",
		"do_x() {\n  echo\n",
		"FOO = \"a\" \\\n",
		"what is this\n",
	} {
		if _, err := Parse(strings.NewReader(in)); err == nil {
			t.Errorf("Parse(%q) = nil error", in)
		}
	}
}

func TestStripPython(t *testing.T) {
	if got := StripPython("a ${@' '.join('{%s}' % x for x in y)} b ${X}"); got != "a  b ${X}" {
		t.Errorf("StripPython = %q", got)
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "${B}/x", "B": "b"}
	if got := Expand("${A} ${C} ${@d.getVar('A')}", vars); got != "b/x ${C} ${@d.getVar('A')}" {
		t.Errorf("Expand = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err == nil {
			f.Add(string(data))
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		file, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		vars := Vars(file)
		for _, v := range vars {
			_ = ParseURIs(Expand(v, vars))
		}
	})
}
