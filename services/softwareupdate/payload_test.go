package softwareupdate

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

func describePayload(data []byte) string {
	var b strings.Builder
	if a, err := ParseUpdateAction(data); err != nil {
		fmt.Fprintf(&b, "install/download: error: %v\n", err)
	} else {
		out, _ := json.Marshal(a)
		fmt.Fprintf(&b, "install/download: %s\n", out)
		for i, m := range a.SoftwareModules {
			for j, s := range m.Artifacts {
				art, err := resolve(s, m.Metadata["copy-artifacts"], nil, ModeStrict)
				fmt.Fprintf(&b, "module %d artifact %d: link=%q hash=%s:%s err=%v\n", i, j, art.Link, art.HashType, art.HashValue, err)
			}
		}
	}
	if a, err := ParseRemoveAction(data); err != nil {
		fmt.Fprintf(&b, "remove: error: %v\n", err)
	} else {
		out, _ := json.Marshal(a)
		fmt.Fprintf(&b, "remove: %s\n", out)
	}
	if a, err := ParseCancelAction(data); err != nil {
		fmt.Fprintf(&b, "cancel: error: %v\n", err)
	} else {
		fmt.Fprintf(&b, "cancel: %q\n", a.CorrelationID)
	}
	return b.String()
}

func describeStatus(data []byte) string {
	st, ok := ParseStatusFile(data)
	return fmt.Sprintf("ok=%v progress=%d message=%q statusCode=%q\n", ok, st.Progress, st.Message, st.StatusCode)
}

func golden(t *testing.T, pattern string, describe func([]byte) string) {
	files, _ := filepath.Glob(pattern)
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
			g := strings.TrimSuffix(f, filepath.Ext(f)) + ".golden"
			if *update {
				if err := os.WriteFile(g, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(g)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestPayloadGolden(t *testing.T) { golden(t, "testdata/payloads/*.json", describePayload) }

func TestStatusFileGolden(t *testing.T) { golden(t, "testdata/status/*.txt", describeStatus) }

func seed(f *testing.F, pattern string) {
	files, _ := filepath.Glob(pattern)
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

func FuzzPayload(f *testing.F) {
	seed(f, "testdata/payloads/*.json")
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseUpdateAction(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidPayload) {
				t.Fatalf("uncategorised error %v", err)
			}
		} else {
			for _, m := range a.SoftwareModules {
				for _, s := range m.Artifacts {
					if strings.ContainsAny(s.FileName, `/\`) {
						t.Fatalf("accepted file name %q", s.FileName)
					}
					_, _ = resolve(s, "", nil, ModeStrict)
				}
			}
		}
		if _, err := ParseRemoveAction(data); err != nil && !errors.Is(err, ErrInvalidPayload) {
			t.Fatalf("uncategorised error %v", err)
		}
		if _, err := ParseCancelAction(data); err != nil && !errors.Is(err, ErrInvalidPayload) {
			t.Fatalf("uncategorised error %v", err)
		}
	})
}

func FuzzStatusFile(f *testing.F) {
	seed(f, "testdata/status/*.txt")
	f.Fuzz(func(t *testing.T, data []byte) {
		st, ok := ParseStatusFile(data)
		if ok && (st.Progress < 0 || st.Progress > 100) {
			t.Fatalf("progress %d accepted", st.Progress)
		}
		if ok && data[len(data)-1] != '\n' {
			t.Fatal("accepted without final LF")
		}
	})
}

func TestLocalArtifactModes(t *testing.T) {
	root := t.TempDir()
	inst := filepath.Join(root, "inst")
	sub := filepath.Join(inst, "sub")
	other := filepath.Join(root, "other")
	for _, d := range []string{sub, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(inst, "a.sh"), filepath.Join(sub, "b.sh"), filepath.Join(other, "c.sh")} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dirs := []string{inst}
	for _, tc := range []struct {
		link, mode string
		ok         bool
	}{
		{filepath.Join(inst, "a.sh"), ModeStrict, true},
		{"a.sh", ModeStrict, true}, // relative: joined to each install dir
		{filepath.Join(sub, "b.sh"), ModeStrict, false},
		{filepath.Join(sub, "b.sh"), ModeScoped, true},
		{"sub/b.sh", ModeScoped, true},
		{filepath.Join(other, "c.sh"), ModeScoped, false},
		{filepath.Join(inst, "..", "other", "c.sh"), ModeScoped, false},
		{filepath.Join(other, "c.sh"), ModeLax, true},
		{filepath.Join(inst, "missing.sh"), ModeLax, false},
	} {
		_, err := localPath(tc.link, dirs, tc.mode)
		if (err == nil) != tc.ok {
			t.Errorf("localPath(%q, %s) = %v, want ok=%v", tc.link, tc.mode, err, tc.ok)
		}
	}
	if _, err := localPath(filepath.Join(inst, "a.sh"), nil, ModeStrict); err == nil {
		t.Error("strict without installDirs accepted")
	}
}
