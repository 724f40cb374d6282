package mgr

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/kantofw/kanto/services/containers/ctrd"
	"github.com/kantofw/kanto/services/containers/logdriver"
	"github.com/kantofw/kanto/services/containers/model"
)

// ioHub connects an interactive container (open_stdin) to the daemon:
// its output goes to the json-file log and to attached clients, and
// attached clients feed its stdin. One hub per container, across runs.
// Output written while the daemon is down waits in the FIFOs (the
// container may block once they are full), unlike other containers whose
// output the shim-run log driver takes.
type ioHub struct {
	mu     sync.Mutex
	subs   map[chan []byte]struct{}
	stdinR *io.PipeReader
	stdinW *io.PipeWriter
	// stdinDone: a client finished writing; the task's stdin must be
	// closed once it exists (the client may finish before the start).
	stdinDone bool
	// per run
	log   *logdriver.Writer
	pipes []*io.PipeWriter
	wg    sync.WaitGroup
}

func newHub() *ioHub {
	h := &ioHub{subs: map[chan []byte]struct{}{}}
	h.stdinR, h.stdinW = io.Pipe()
	return h
}

// streams returns the task's streams for a new run, logging to logPath
// (empty: no log).
func (h *ioHub) streams(c *model.Container, logPath string, maxSize int64, maxFiles int) (*ctrd.Streams, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if logPath != "" {
		if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
			return nil, err
		}
		h.log = &logdriver.Writer{Path: logPath, MaxSize: maxSize, MaxFiles: maxFiles}
	}
	out := func(stream string) io.Writer {
		pr, pw := io.Pipe()
		h.pipes = append(h.pipes, pw)
		h.wg.Add(1)
		// Owned by the run: ends when endRun closes the pipe.
		go func() {
			defer h.wg.Done()
			if h.log != nil {
				_ = logdriver.Copy(h.log, stream, pr)
			} else {
				_, _ = io.Copy(io.Discard, pr)
			}
		}()
		return io.MultiWriter(pw, broadcaster{h})
	}
	return &ctrd.Streams{Stdin: h.stdinR, Stdout: out("stdout"), Stderr: out("stderr"), Terminal: c.IOConfig.Tty}, nil
}

// broadcaster sends output to every attached client, dropping it for a
// client that does not keep up.
type broadcaster struct{ h *ioHub }

func (b broadcaster) Write(p []byte) (int, error) {
	cp := append([]byte(nil), p...)
	b.h.mu.Lock()
	for ch := range b.h.subs {
		select {
		case ch <- cp:
		default:
		}
	}
	b.h.mu.Unlock()
	return len(p), nil
}

// endRun flushes the log, ends the attached clients' streams and gives the
// next run a fresh stdin.
func (h *ioHub) endRun() {
	h.mu.Lock()
	pipes := h.pipes
	h.pipes = nil
	h.mu.Unlock()
	for _, p := range pipes {
		_ = p.Close()
	}
	h.wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.log != nil {
		_ = h.log.Close()
		h.log = nil
	}
	for ch := range h.subs {
		close(ch)
		delete(h.subs, ch)
	}
	_ = h.stdinW.Close()
	h.stdinR, h.stdinW = io.Pipe()
	h.stdinDone = false
}

// pendingStdinClose reports whether a client finished writing before the
// run's task existed.
func (h *ioHub) pendingStdinClose() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stdinDone
}

// Session is an attached client of an interactive container.
type Session struct {
	// Output yields the container's output until the current (or next) run
	// ends, then is closed.
	Output <-chan []byte
	h      *ioHub
	ch     chan []byte
	m      *Manager
	id     string
}

// ErrNotInteractive: the container was not created with open_stdin.
var ErrNotInteractive = errors.New("container is not interactive")

// Attach connects to an interactive container's streams.
func (m *Manager) Attach(id string) (*Session, error) {
	e, err := m.lock(id)
	if err != nil {
		return nil, err
	}
	defer e.mu.Unlock()
	if e.c.IOConfig == nil || !e.c.IOConfig.OpenStdin {
		return nil, ErrNotInteractive
	}
	if e.hub == nil {
		e.hub = newHub()
	}
	ch := make(chan []byte, 256)
	e.hub.mu.Lock()
	e.hub.subs[ch] = struct{}{}
	e.hub.mu.Unlock()
	return &Session{Output: ch, h: e.hub, ch: ch, m: m, id: id}, nil
}

// Write sends data to the container's stdin.
func (s *Session) Write(p []byte) (int, error) {
	s.h.mu.Lock()
	w := s.h.stdinW
	s.h.mu.Unlock()
	return w.Write(p)
}

// CloseStdin closes the container's stdin (the client finished writing).
func (s *Session) CloseStdin(ctx context.Context) error {
	// EOF on our side first, so the FIFO copy ends, then tell the shim.
	s.h.mu.Lock()
	w := s.h.stdinW
	s.h.stdinDone = true
	s.h.mu.Unlock()
	_ = w.Close()
	err := s.m.rt.CloseStdin(ctx, s.id)
	if errors.Is(err, ctrd.ErrNotRunning) {
		return nil // not started yet: the start closes it
	}
	return err
}

// Detach stops the session's output.
func (s *Session) Detach() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if _, ok := s.h.subs[s.ch]; ok {
		delete(s.h.subs, s.ch)
		close(s.ch)
	}
}
