package logdriver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	w := &Writer{Path: filepath.Join(dir, "json.log"), MaxSize: 300, MaxFiles: 3, Now: func() time.Time { return time.Unix(0, 0) }}
	for i := range 50 {
		if err := w.Write("stdout", fmt.Sprintf("line %d\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if fi, _ := e.Info(); fi.Size() > 300 {
			t.Errorf("%s has %d bytes", e.Name(), fi.Size())
		}
	}
	if strings.Join(names, " ") != "json.log json.log.1 json.log.2" {
		t.Errorf("files %v", names)
	}
	var lines []string
	if err := Tail(w.Path, 2, func(l string) error { lines = append(lines, l); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"log":"line 48\n","stream":"stdout","time":"1970-01-01T00:00:00Z"}`,
		`{"log":"line 49\n","stream":"stdout","time":"1970-01-01T00:00:00Z"}`,
	}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("Tail = %q, want %q", lines, want)
	}
}

func TestOneFileTruncates(t *testing.T) {
	p := filepath.Join(t.TempDir(), "json.log")
	w := &Writer{Path: p, MaxSize: 200, MaxFiles: 1}
	for i := range 20 {
		_ = w.Write("stderr", fmt.Sprintf("l%d\n", i))
	}
	w.Close()
	if _, err := os.Stat(p + ".1"); err == nil {
		t.Error("rotated file kept with max files 1")
	}
	if fi, _ := os.Stat(p); fi.Size() > 200 {
		t.Errorf("size %d", fi.Size())
	}
}

func TestCopySplitsLongLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "json.log")
	w := &Writer{Path: p}
	long := strings.Repeat("x", 40<<10) + "\nshort\n"
	if err := Copy(w, "stdout", strings.NewReader(long)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	n := 0
	_ = Tail(p, -1, func(string) error { n++; return nil })
	if n != 4 { // 16k + 16k + 8k+\n + short
		t.Errorf("%d records, want 4", n)
	}
	if err := Tail(filepath.Join(t.TempDir(), "none"), 1, func(string) error { return nil }); err == nil {
		t.Error("missing file accepted")
	}
}

type slowWriter struct {
	mu    sync.Mutex
	gate  chan struct{}
	lines []string
}

func (s *slowWriter) Write(_, line string) error {
	<-s.gate
	s.mu.Lock()
	s.lines = append(s.lines, line)
	s.mu.Unlock()
	return nil
}

func TestBufferDropsWhenFull(t *testing.T) {
	sw := &slowWriter{gate: make(chan struct{})}
	b := NewBuffer(sw, 10)
	for i := range 5 {
		_ = b.Write("stdout", fmt.Sprintf("%04d\n", i)) // 5 bytes each
	}
	close(sw.gate)
	b.Close()
	// The writer holds one line while blocked; two more fit in 10 bytes.
	if len(sw.lines) < 2 || len(sw.lines) > 3 || b.Dropped == 0 {
		t.Errorf("written %q, dropped %d", sw.lines, b.Dropped)
	}
}
