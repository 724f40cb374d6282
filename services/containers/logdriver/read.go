package logdriver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrNoLog marks a log file that does not exist.
var ErrNoLog = errors.New("log file not found")

// Tail calls emit for the last n lines of path (all of them when n < 0), in
// order. Only the current file is read, as upstream.
func Tail(path string, n int, emit func(line string) error) error {
	if n == 0 {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("log file not found %s: %w", path, ErrNoLog)
		}
		return err
	}
	data = bytes.TrimRight(data, "\n")
	if len(data) == 0 {
		return nil
	}
	lines := bytes.Split(data, []byte{'\n'})
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for _, l := range lines {
		if err := emit(string(l)); err != nil {
			return err
		}
	}
	return nil
}

// Follow streams the raw output (the "log" field of each record) appended to
// path after offset, calling emit, until stop is closed. It returns the
// offset reached.
func Follow(path string, offset int64, emit func([]byte) error, poll func() bool) (int64, error) {
	for {
		f, err := os.Open(path)
		if err == nil {
			st, _ := f.Stat()
			if st != nil && st.Size() < offset {
				offset = 0 // rotated
			}
			if _, err := f.Seek(offset, io.SeekStart); err == nil {
				data, _ := io.ReadAll(f)
				if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
					for _, l := range bytes.Split(data[:i], []byte{'\n'}) {
						var e Entry
						if jsonUnmarshal(l, &e) == nil {
							if err := emit([]byte(e.Log)); err != nil {
								f.Close()
								return offset, err
							}
						}
					}
					offset += int64(i + 1)
				}
			}
			f.Close()
		}
		if !poll() {
			return offset, nil
		}
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
