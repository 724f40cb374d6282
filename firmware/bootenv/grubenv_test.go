package bootenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kantofw/kanto/internal/testenv"
)

func TestGrubEnvRoundTripWithGrubEditenv(t *testing.T) {
	editenv := testenv.LookPath(t, "grub-editenv")
	dir := t.TempDir()
	path := filepath.Join(dir, "grubenv")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(editenv, append([]string{path}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("grub-editenv %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// grub-editenv writes, we read (with Debian's "# WARNING" line).
	run("create")
	run("set", `ORDER=A B`, "A_OK=1", "A_TRY=0", `PATHS=c:\dir=x`)
	g := NewGrubEnv(path)
	got, err := g.Read()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "PATHS": `c:\dir=x`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("read after grub-editenv (-want +got):\n%s", diff)
	}
	// We write, grub-editenv reads.
	if err := g.Write(map[string]string{"B_OK": "0", "B_TRY": "0", "A_TRY": "", "ML": "line1\nline2"}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() != GrubBlockSize {
		t.Fatalf("size %d, want %d", fi.Size(), GrubBlockSize)
	}
	lines := strings.Split(strings.TrimSpace(run("list")), "\n")
	sort.Strings(lines)
	wantLines := []string{"A_OK=1", "B_OK=0", "B_TRY=0", "ML=line1", "line2", "ORDER=A B", `PATHS=c:\dir=x`}
	sort.Strings(wantLines)
	if diff := cmp.Diff(wantLines, lines); diff != "" {
		t.Fatalf("grub-editenv list (-want +got):\n%s", diff)
	}
	// And grub-editenv can modify our file, we read it back.
	run("set", "X=1")
	got, err = g.Read()
	if err != nil {
		t.Fatal(err)
	}
	if got["X"] != "1" || got["ML"] != "line1\nline2" || got["PATHS"] != `c:\dir=x` {
		t.Fatalf("after grub-editenv set: %q", got)
	}
}

func TestGrubEnvInterruptedWriteKeepsOldEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grubenv")
	g := NewGrubEnv(path)
	if err := g.Write(map[string]string{"ORDER": "A B", "A_OK": "1", "A_TRY": "0"}); err != nil {
		t.Fatal(err)
	}
	powerCut := errors.New("power cut")
	for _, tc := range []struct {
		name string
		cut  func(tmp string) error
	}{
		{"before rename", func(string) error { return powerCut }},
		{"temp truncated", func(tmp string) error { os.Truncate(tmp, 100); return powerCut }},
		{"temp garbage", func(tmp string) error { os.WriteFile(tmp, []byte("garbage"), 0o644); return powerCut }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.beforeRename = tc.cut
			err := g.Write(map[string]string{"ORDER": "B A", "B_OK": "1", "B_TRY": "1"})
			g.beforeRename = nil
			if !errors.Is(err, powerCut) {
				t.Fatalf("write: %v", err)
			}
			got, err := g.Read()
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"ORDER": "A B", "A_OK": "1", "A_TRY": "0"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseGrubEnvErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrNoEnv},
		{"no header", "ORDER=A B\n", ErrNoEnv},
		{"no equals", grubHeader + "ORDER\n", ErrFormat},
		{"unterminated", grubHeader + "ORDER=A", ErrFormat},
		{"empty key", grubHeader + "=x\n", ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseGrubEnv([]byte(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEncodeGrubEnvTooLarge(t *testing.T) {
	_, err := EncodeGrubEnv(map[string]string{"X": strings.Repeat("x", 2000)}, GrubBlockSize)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
}

func FuzzParseGrubEnv(f *testing.F) {
	for _, name := range []string{"grubenv-debian", "grubenv-kanto"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseGrubEnv(data)
		if err != nil {
			return
		}
		// Whatever parses must survive encode + parse unchanged.
		out, err := EncodeGrubEnv(env, 1<<20)
		if err != nil {
			return
		}
		again, err := ParseGrubEnv(out)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if diff := cmp.Diff(env, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
