package install

import (
	"io"
	"sync"
)

// pipeWriter overlaps writing with the caller's hashing: Write copies p
// into one of a few fixed buffers and hands it to a writer goroutine, so
// the slot device is written while the next chunk is read and verified.
// Memory is bounded by depth*size. The goroutine is owned by the
// pipeWriter: it starts in newPipeWriter and ends in Close, which returns
// the first write error.
type pipeWriter struct {
	w    io.Writer
	free chan []byte
	full chan []byte
	done chan struct{}
	mu   sync.Mutex
	err  error
	cur  []byte
	size int
}

func newPipeWriter(w io.Writer, depth, size int) *pipeWriter {
	p := &pipeWriter{w: w, free: make(chan []byte, depth), full: make(chan []byte, depth), done: make(chan struct{}), size: size}
	for range depth {
		p.free <- make([]byte, 0, size)
	}
	go p.loop()
	return p
}

func (p *pipeWriter) loop() {
	defer close(p.done)
	for b := range p.full {
		if p.error() == nil {
			if _, err := p.w.Write(b); err != nil {
				p.mu.Lock()
				p.err = err
				p.mu.Unlock()
			}
		}
		p.free <- b[:0]
	}
}

func (p *pipeWriter) error() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Write implements io.Writer; it reports an earlier write's error.
func (p *pipeWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		if err := p.error(); err != nil {
			return 0, err
		}
		if p.cur == nil {
			p.cur = <-p.free
		}
		c := copy(p.cur[len(p.cur):p.size], b)
		p.cur = p.cur[:len(p.cur)+c]
		b = b[c:]
		if len(p.cur) == p.size {
			p.full <- p.cur
			p.cur = nil
		}
	}
	return n, nil
}

// Close flushes the last buffer, waits for the writer goroutine and
// returns the first write error.
func (p *pipeWriter) Close() error {
	if len(p.cur) > 0 {
		p.full <- p.cur
	}
	p.cur = nil
	close(p.full)
	<-p.done
	return p.error()
}
