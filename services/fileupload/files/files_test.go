package files

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestResolveModes(t *testing.T) {
	for _, tc := range []struct {
		mode      Mode
		conf, req string
		want      string
		err       error
	}{
		{Strict, "/d/*.log", "", "/d/*.log", nil},
		{Strict, "/d/*.log", "/d/*.log", "/d/*.log", nil},
		{Strict, "/d/*.log", "/d/a.log", "", ErrNotPermitted},
		{Scoped, "/d/*.log", "/d/a.log", "/d/a.log", nil},
		{Scoped, "/d/*.log", "/e/a.log", "", ErrNotPermitted},
		{Scoped, "/d/*", "/d/../etc/passwd", "", ErrNotPermitted},
		{Lax, "", "/anything/*", "/anything/*", nil},
		{Lax, "", "/x/../y", "", ErrNotPermitted},
		{Lax, "", "", "", ErrNoFiles},
		{Lax, "", "/x/[", "", ErrBadGlob},
	} {
		got, err := Policy{Glob: tc.conf, Mode: tc.mode}.Resolve(tc.req)
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("%s %q %q: got %q, %v; want %q, %v", tc.mode, tc.conf, tc.req, got, err, tc.want, tc.err)
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		p  Policy
		ok bool
	}{
		{Policy{Glob: "/d/*", Mode: Strict}, true},
		{Policy{Mode: Lax}, true},
		{Policy{Mode: Strict}, false},
		{Policy{Glob: "/d/[", Mode: Strict}, false},
		{Policy{Glob: "/d/*", Mode: "loose"}, false},
	} {
		if err := tc.p.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc.p, err)
		}
	}
}

func TestSelectSymlinks(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "up")
	write(t, filepath.Join(dir, "a.log"), "a")
	write(t, filepath.Join(dir, "b.log"), "b")
	write(t, filepath.Join(root, "secret.log"), "s")
	if err := os.Mkdir(filepath.Join(dir, "sub.log"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := Policy{Glob: filepath.Join(dir, "*.log"), Mode: Scoped}
	got, err := p.Select(p.Glob)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v (directories skipped)", got, want)
	}

	// A link to a sibling inside the glob is fine; one pointing out is not.
	if err := os.Symlink("a.log", filepath.Join(dir, "in.log")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Select(p.Glob); err != nil {
		t.Errorf("link inside: %v", err)
	}
	if err := os.Symlink(filepath.Join(root, "secret.log"), filepath.Join(dir, "out.log")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Select(p.Glob); !errors.Is(err, ErrNotPermitted) || !strings.Contains(err.Error(), "secret.log") {
		t.Errorf("link out: %v", err)
	}
	// A linked directory leading out is refused too.
	p2 := Policy{Glob: filepath.Join(root, "d2", "*", "*.log"), Mode: Strict}
	write(t, filepath.Join(root, "d2", "real", "x.log"), "x")
	if err := os.Symlink(dir, filepath.Join(root, "d2", "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "out.log")); err != nil {
		t.Fatal(err)
	}
	if _, err := p2.Select(p2.Glob); !errors.Is(err, ErrNotPermitted) {
		t.Errorf("directory link out: %v", err)
	}
}

// TestOpenRefusesSwappedLink: a file replaced by a link to outside between
// selection and upload is refused at Open.
func TestOpenRefusesSwappedLink(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "up")
	write(t, filepath.Join(dir, "a.log"), "a")
	write(t, filepath.Join(root, "secret"), "s")
	p := Policy{Glob: filepath.Join(dir, "*.log"), Mode: Strict}
	if err := os.Remove(filepath.Join(dir, "a.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "secret"), filepath.Join(dir, "a.log")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p, filepath.Join(dir, "a.log"), "", nil); !errors.Is(err, ErrNotPermitted) {
		t.Errorf("got %v, want ErrNotPermitted", err)
	}
	if _, err := Open(p, filepath.Join(dir, "..", "secret"), "", nil); !errors.Is(err, ErrNotPermitted) {
		t.Errorf("dot dot: got %v", err)
	}
}

func TestSectionDetectsChanges(t *testing.T) {
	dir := t.TempDir()
	p := Policy{Glob: filepath.Join(dir, "*"), Mode: Strict}
	for _, tc := range []struct {
		name   string
		change func(path string)
		want   string
	}{
		{"unchanged", func(string) {}, ""},
		{"grown", func(path string) {
			f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString("more")
			f.Close()
		}, "size changed"},
		{"removed", func(path string) { os.Remove(path) }, "vanished"},
		{"replaced", func(path string) {
			os.Remove(path)
			os.WriteFile(path, []byte("0123456789"), 0o644)
		}, "replaced"},
		{"touched", func(path string) {
			os.Chtimes(path, time.Now(), time.Now().Add(time.Hour))
		}, "modified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			write(t, path, "0123456789")
			f, err := Open(p, path, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			s := f.Section(0, f.Size())
			head := make([]byte, 4)
			if _, err := io.ReadFull(s, head); err != nil {
				t.Fatal(err)
			}
			tc.change(path)
			rest, err := io.ReadAll(s)
			if tc.want == "" {
				if err != nil || string(head)+string(rest) != "0123456789" {
					t.Errorf("got %q, %v", rest, err)
				}
				return
			}
			if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrChanged %q", err, tc.want)
			}
			if len(head)+len(rest) >= 10 {
				t.Errorf("the whole body was handed out (%d bytes) before the change was noticed", len(head)+len(rest))
			}
		})
	}
}

func TestRemoveOnlySameFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a")
	write(t, path, "a")
	f, err := Open(Policy{Glob: filepath.Join(dir, "*"), Mode: Strict}, path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	os.Remove(path)
	write(t, path, "new")
	if err := f.Remove(); !errors.Is(err, ErrChanged) {
		t.Errorf("got %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Error("a new file of the same name was removed")
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter(1000)
	now := time.Unix(0, 0)
	var slept time.Duration
	l.now = func() time.Time { return now }
	l.sleep = func(d time.Duration) { slept += d; now = now.Add(d) }
	for range 5 {
		l.wait(1000)
	}
	// 5000 bytes at 1000 B/s with a 1000-byte burst: 4 s of sleeping.
	if slept < 3900*time.Millisecond || slept > 4100*time.Millisecond {
		t.Errorf("slept %v, want about 4s", slept)
	}
	if NewLimiter(0) != nil {
		t.Error("a zero rate must not limit")
	}
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{"/d/*.log", "/d/../x", "/d/a.log", "[", "", "/d/**/x", "/d/\\*"} {
		f.Add(s)
	}
	p := Policy{Glob: "/d/*.log", Mode: Scoped}
	f.Fuzz(func(t *testing.T, req string) {
		got, err := p.Resolve(req)
		if err != nil {
			return
		}
		if hasDotDot(got) {
			t.Errorf("resolved %q contains '..'", got)
		}
		if ok, _ := filepath.Match(p.Glob, got); !ok && got != p.Glob {
			t.Errorf("resolved %q outside %q", got, p.Glob)
		}
	})
}

// TestLaxAllowsOtherFolders: in lax mode the request's glob, not the
// configured one, bounds where links may lead.
func TestLaxAllowsOtherFolders(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "conf", "a.log"), "a")
	write(t, filepath.Join(root, "other", "b.log"), "b")
	p := Policy{Glob: filepath.Join(root, "conf", "*.log"), Mode: Lax}
	glob, err := p.Resolve(filepath.Join(root, "other", "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Select(glob)
	if err != nil || len(got) != 1 {
		t.Fatalf("got %v, %v", got, err)
	}
	f, err := Open(p, got[0], glob, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}
