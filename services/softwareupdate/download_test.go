package softwareupdate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// artifactServer serves one body; it can cut the first connection after
// cutAfter bytes, ignore Range requests, or send extra bytes.
type artifactServer struct {
	body     []byte
	cutAfter int
	noRange  bool

	mu     sync.Mutex
	ranges []string
	cuts   int
}

func (s *artifactServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	cut := s.cutAfter > 0 && s.cuts == 0
	if cut {
		s.cuts++
	}
	s.mu.Unlock()
	body := s.body
	status := http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" && !s.noRange {
		off, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, len(body)-1, len(body)))
		body = body[off:]
		status = http.StatusPartialContent
	}
	if !s.noRange {
		w.Header().Set("Accept-Ranges", "bytes")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if cut {
		_, _ = w.Write(body[:s.cutAfter])
		w.(http.Flusher).Flush()
		// Drop the connection mid-body.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	_, _ = w.Write(body)
}

func (s *artifactServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

func body(n int) []byte {
	b := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)
	return b[:n]
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func newTestDownloader(retries int) *Downloader {
	d, _ := NewDownloader(retries, 0, "", nil)
	return d
}

func TestDownloadResumesAfterCut(t *testing.T) {
	data := body(256 * 1024)
	srv := &artifactServer{body: data, cutAfter: 100 * 1024}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	a := Artifact{FileName: "pkg.bin", Size: int64(len(data)), HashType: "SHA256", HashValue: sha(data), Link: ts.URL + "/pkg.bin"}
	var progress []int64
	if err := newTestDownloader(2).Fetch(context.Background(), a, dir, func(n int64) { progress = append(progress, n) }); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "pkg.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("content differs (err %v)", err)
	}
	seen := srv.seen()
	if len(seen) != 2 || seen[0] != "" || !strings.HasPrefix(seen[1], "bytes=") || seen[1] == "bytes=0-" {
		t.Fatalf("requests' Range headers %q, want a full GET then a resume", seen)
	}
	off, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(seen[1], "bytes="), "-"))
	if off < 1 || off > 100*1024 {
		t.Errorf("resumed at %d", off)
	}
	if _, err := os.Stat(filepath.Join(dir, TempPrefix+"pkg.bin")); !os.IsNotExist(err) {
		t.Errorf("temp file left: %v", err)
	}
}

func TestDownloadResumesPartialFileFromEarlierRun(t *testing.T) {
	data := body(64 * 1024)
	srv := &artifactServer{body: data}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, TempPrefix+"f"), data[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	a := Artifact{FileName: "f", Size: int64(len(data)), HashType: "SHA256", HashValue: sha(data), Link: ts.URL}
	if err := newTestDownloader(0).Fetch(context.Background(), a, dir, func(int64) {}); err != nil {
		t.Fatal(err)
	}
	if got := srv.seen(); len(got) != 1 || got[0] != "bytes=1000-" {
		t.Errorf("Range headers %q, want [bytes=1000-]", got)
	}
	// A complete valid file is reused without a request.
	if err := newTestDownloader(0).Fetch(context.Background(), a, dir, func(int64) {}); err != nil {
		t.Fatal(err)
	}
	if got := srv.seen(); len(got) != 1 {
		t.Errorf("second fetch made a request: %q", got)
	}
}

func TestDownloadWithoutRangeSupportStartsOver(t *testing.T) {
	data := body(8 * 1024)
	srv := &artifactServer{body: data, noRange: true}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, TempPrefix+"f"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := Artifact{FileName: "f", Size: int64(len(data)), HashType: "SHA256", HashValue: sha(data), Link: ts.URL}
	if err := newTestDownloader(0).Fetch(context.Background(), a, dir, func(int64) {}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "f")); !bytes.Equal(got, data) {
		t.Error("content differs")
	}
}

func TestDownloadWrongHashRemovesFile(t *testing.T) {
	data := body(4096)
	srv := &artifactServer{body: data}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	a := Artifact{FileName: "f", Size: int64(len(data)), HashType: "SHA256", HashValue: sha([]byte("other")), Link: ts.URL}
	err := newTestDownloader(1).Fetch(context.Background(), a, dir, func(int64) {})
	if !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("got %v, want ErrHashMismatch", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("files left: %v", entries)
	}
	// The retry started from zero, not with a Range.
	if got := srv.seen(); len(got) != 2 || got[1] != "" {
		t.Errorf("Range headers %q", got)
	}
}

func TestDownloadSizeGuard(t *testing.T) {
	data := body(4096)
	ts := httptest.NewServer(&artifactServer{body: data})
	defer ts.Close()
	dir := t.TempDir()
	a := Artifact{FileName: "f", Size: 1000, HashType: "SHA256", HashValue: sha(data), Link: ts.URL}
	if err := newTestDownloader(0).Fetch(context.Background(), a, dir, func(int64) {}); !errors.Is(err, ErrSizeExceeded) {
		t.Fatalf("got %v, want ErrSizeExceeded", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files left: %v", entries)
	}
}

func TestDownloadHTTPErrorRetries(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer ts.Close()
	d := newTestDownloader(2)
	var waits []time.Duration
	d.sleep = func(_ context.Context, w time.Duration) error { waits = append(waits, w); return nil }
	d.RetryInterval = 5 * time.Second
	a := Artifact{FileName: "f", HashType: "SHA256", HashValue: "00", Link: ts.URL}
	if err := d.Fetch(context.Background(), a, t.TempDir(), func(int64) {}); !errors.Is(err, ErrDownload) {
		t.Fatalf("got %v", err)
	}
	if calls != 3 || len(waits) != 2 || waits[0] != 5*time.Second {
		t.Errorf("calls %d waits %v", calls, waits)
	}
}
