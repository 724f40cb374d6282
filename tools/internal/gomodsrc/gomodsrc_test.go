package gomodsrc

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseGoSum(t *testing.T) {
	data, err := os.ReadFile("testdata/go.sum")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseGoSum(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Path: "github.com/Azure/x", Version: "v1.0.0"},
		{Path: "golang.org/x/sys", Version: "v0.1.0", ModOnly: true},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("ParseGoSum (-got +want):\n%s", diff)
	}
}

func TestRenderParseRoundTrip(t *testing.T) {
	es := []Entry{
		{Path: "github.com/Azure/x", Version: "v1.0.0", SHA256: strings.Repeat("a", 64)},
		{Path: "golang.org/x/sys", Version: "v0.1.0", ModOnly: true, SHA256: strings.Repeat("b", 64)},
	}
	got, err := ParseInc(bytes.NewReader(Render(es)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, es); diff != "" {
		t.Errorf("round trip (-got +want):\n%s", diff)
	}
}

func TestChecksumFromCache(t *testing.T) {
	dir := t.TempDir()
	e := Entry{Path: "github.com/Azure/x", Version: "v1.0.0"}
	p := CachePath(dir, e)
	if want := filepath.Join(dir, "cache/download/github.com/!azure/x/@v/v1.0.0.zip"); p != want {
		t.Fatalf("CachePath = %s, want %s", p, want)
	}
	if _, err := Checksum(dir, e); err == nil {
		t.Fatal("Checksum of a missing file: nil error")
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("zip"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Checksum(dir, e)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("zip"))
	if want := hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Checksum = %s, want %s", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	if _, err := ParseGoSum(strings.NewReader("a v1 nohash\n")); err == nil {
		t.Error("ParseGoSum: nil error for a bad hash")
	}
	if _, err := ParseGoSum(strings.NewReader("example.com/a;mod=1 v1.0.0 h1:x=\n")); !errors.Is(err, ErrSyntax) {
		t.Errorf("ParseGoSum of a path with ';': %v, want ErrSyntax", err)
	}
	if _, err := ParseGoSum(strings.NewReader("example.com/a 1.0 h1:x=\n")); !errors.Is(err, ErrSyntax) {
		t.Errorf("ParseGoSum of a non-semver version: %v, want ErrSyntax", err)
	}
	if _, err := ParseInc(strings.NewReader("gomod://x;bogus=1\n")); err == nil {
		t.Error("ParseInc: nil error for an unknown parameter")
	}
	if _, err := ParseInc(strings.NewReader("gomod://x\n")); err == nil {
		t.Error("ParseInc: nil error without a version")
	}
}

func FuzzParseGoSum(f *testing.F) {
	data, _ := os.ReadFile("testdata/go.sum")
	f.Add(string(data))
	f.Fuzz(func(t *testing.T, in string) {
		es, err := ParseGoSum(strings.NewReader(in))
		if err != nil {
			return
		}
		back, err := ParseInc(bytes.NewReader(Render(es)))
		if err != nil {
			t.Fatalf("ParseInc(Render(%q)): %v", in, err)
		}
		if len(back) != len(es) {
			t.Fatalf("round trip lost entries: %d != %d", len(back), len(es))
		}
	})
}

func FuzzParseInc(f *testing.F) {
	f.Add(string(Render([]Entry{{Path: "a.b/c", Version: "v1.0.0", ModOnly: true, SHA256: "00"}})))
	f.Fuzz(func(t *testing.T, in string) {
		_, _ = ParseInc(strings.NewReader(in))
	})
}
