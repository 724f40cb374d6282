// Package logdriver is the json-file log driver of containers: one
// docker-compatible JSON object per output line, rotated by size. The
// containerd shim runs it as a logging binary (the kanto binary invoked as
// container-management-log), so a container's output keeps being recorded
// while the daemon is down. It also reads logs back for the Logs RPC.
package logdriver

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// Entry is one log record as written to json.log.
type Entry struct {
	Log    string `json:"log"`
	Stream string `json:"stream"`
	Time   string `json:"time"`
}

// Writer appends entries to a file and rotates it when it reaches MaxSize:
// json.log.(n-1) moves to json.log.n, ..., json.log to json.log.1. MaxFiles
// counts the current file, so at most MaxFiles files exist; with 1 the file
// is truncated when full. Safe for concurrent use.
type Writer struct {
	Path     string
	MaxSize  int64
	MaxFiles int
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Write records one line of stream.
func (w *Writer) Write(stream, line string) error {
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	b, err := json.Marshal(Entry{Log: line, Stream: stream, Time: now().UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return err
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		if err := w.open(); err != nil {
			return err
		}
	}
	if w.MaxSize > 0 && w.size > 0 && w.size+int64(len(b)) > w.MaxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(b)
	w.size += int64(n)
	return err
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, st.Size()
	return nil
}

func (w *Writer) rotate() error {
	if err := w.f.Close(); err != nil {
		return err
	}
	w.f = nil
	if w.MaxFiles <= 1 {
		if err := os.Truncate(w.Path, 0); err != nil {
			return err
		}
		return w.open()
	}
	_ = os.Remove(w.Path + "." + strconv.Itoa(w.MaxFiles-1))
	for i := w.MaxFiles - 2; i >= 1; i-- {
		err := os.Rename(w.Path+"."+strconv.Itoa(i), w.Path+"."+strconv.Itoa(i+1))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(w.Path, w.Path+".1"); err != nil {
		return err
	}
	return w.open()
}

// Close closes the current file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
