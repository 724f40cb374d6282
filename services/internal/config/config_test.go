package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type settings struct {
	Address string   `json:"address"`
	Count   int      `json:"count"`
	Verbose bool     `json:"verbose"`
	ALPN    []string `json:"alpn"`
}

func load(t *testing.T, args ...string) (settings, error) {
	t.Helper()
	s := settings{Address: "default", Count: 1, ALPN: []string{"def"}}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("configFile", "", "")
	fs.StringVar(&s.Address, "address", s.Address, "")
	fs.IntVar(&s.Count, "count", s.Count, "")
	fs.BoolVar(&s.Verbose, "verbose", s.Verbose, "")
	fs.Var(&StringList{Values: &s.ALPN, Split: true}, "alpn", "")
	err := Load(fs, args, "configFile", &s)
	return s, err
}

func TestPrecedence(t *testing.T) {
	valid := filepath.Join("testdata", "valid.json")
	tests := []struct {
		name string
		args []string
		want settings
	}{
		{"defaults", nil, settings{Address: "default", Count: 1, ALPN: []string{"def"}}},
		{"flags only", []string{"-address", "flag", "-verbose"}, settings{Address: "flag", Count: 1, Verbose: true, ALPN: []string{"def"}}},
		{"file over defaults", []string{"-configFile", valid}, settings{Address: "mqtts://hub.example:8883", Count: 3, ALPN: []string{"x", "y"}}},
		{"explicit flag over file", []string{"-configFile", valid, "-count", "7"}, settings{Address: "mqtts://hub.example:8883", Count: 7, ALPN: []string{"x", "y"}}},
		{"flag before the file flag still wins", []string{"-address", "cli", "-configFile", valid}, settings{Address: "cli", Count: 3, ALPN: []string{"x", "y"}}},
		{"list flag replaces the file's list", []string{"-configFile", valid, "-alpn", "h2 mqtt"}, settings{Address: "mqtts://hub.example:8883", Count: 3, ALPN: []string{"h2", "mqtt"}}},
		{"empty file", []string{"-configFile", filepath.Join("testdata", "empty.json")}, settings{Address: "default", Count: 1, ALPN: []string{"def"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := load(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestErrorsNameFileLineColumn(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"wrong-type.json", []string{"wrong-type.json:3:", `"count" must be int`, "string"}},
		{"trailing-comma.json", []string{"trailing-comma.json:4:1"}},
	}
	for _, tt := range tests {
		_, err := load(t, "-configFile", filepath.Join("testdata", tt.file))
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: err = %v, want ErrInvalid", tt.file, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", tt.file, err, w)
			}
		}
	}
}

func TestMissingFileIsReportedAfterFlags(t *testing.T) {
	got, err := load(t, "-configFile", "/nonexistent/x.json", "-address", "flag")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if got.Address != "flag" {
		t.Errorf("address = %q; flags must still apply", got.Address)
	}
}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		data, _ := os.ReadFile(p)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s settings
		err := Decode("fuzz.json", data, &s)
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error without category: %v", err)
		}
	})
}

func TestStringListSet(t *testing.T) {
	tests := []struct {
		name    string
		list    StringList
		args    []string
		want    []string
		wantErr bool
	}{
		{"plain keeps commas", StringList{}, []string{"a,b"}, []string{"a,b"}, false},
		{"plain keeps spaces", StringList{}, []string{"a b"}, []string{"a b"}, false},
		{"plain repeated", StringList{}, []string{"a", "b"}, []string{"a", "b"}, false},
		{"split on spaces", StringList{Split: true}, []string{"h2 mqtt"}, []string{"h2", "mqtt"}, false},
		{"csv once", StringList{CSV: true}, []string{"a:5000,b:5000"}, []string{"a:5000", "b:5000"}, false},
		{"csv twice", StringList{CSV: true}, []string{"a,b", "c"}, []string{"a", "b", "c"}, false},
		{"csv quoted comma", StringList{CSV: true}, []string{`"k1,x",k2`}, []string{"k1,x", "k2"}, false},
		{"csv keeps spaces", StringList{CSV: true}, []string{"a, b"}, []string{"a", " b"}, false},
		{"csv empty value clears", StringList{CSV: true}, []string{""}, nil, false},
		{"csv empty entry kept", StringList{CSV: true}, []string{"a,,b"}, []string{"a", "", "b"}, false},
		{"csv over split", StringList{CSV: true, Split: true}, []string{"a b,c"}, []string{"a b", "c"}, false},
		{"csv bare quote", StringList{CSV: true}, []string{`a"b`}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []string{"from-file"}
			l := tt.list
			l.Values = &got
			var err error
			for _, a := range tt.args {
				if err = l.Set(a); err != nil {
					break
				}
			}
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				if diff := cmp.Diff([]string{"from-file"}, got); diff != "" {
					t.Errorf("a failed Set changed the list (-want +got)\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestStringListCSVRoundTrip(t *testing.T) {
	for _, want := range [][]string{{"a"}, {"a", "b"}, {"k,1", `q"uote`, " s"}} {
		l := StringList{Values: &want, CSV: true}
		var got []string
		back := StringList{Values: &got, CSV: true}
		if err := back.Set(l.String()); err != nil {
			t.Fatalf("%q: %v", l.String(), err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%q (-want +got)\n%s", l.String(), diff)
		}
	}
}

func FuzzStringListCSV(f *testing.F) {
	for _, s := range []string{"a,b", `"a,b",c`, "", `a"b`, "a,,b", "x\ny"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got []string
		l := StringList{Values: &got, CSV: true}
		if err := l.Set(s); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error without category: %v", err)
		}
	})
}
