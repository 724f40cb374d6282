package logdriver

import "sync"

// Buffer is the non-blocking mode: lines are queued up to max bytes and
// written by one goroutine; a line that does not fit is dropped, so a slow
// disk never blocks the container's output.
type Buffer struct {
	w    LineWriter
	max  int64
	mu   sync.Mutex
	cond *sync.Cond
	q    []entry
	size int64
	done bool
	// Dropped counts lines dropped because the buffer was full.
	Dropped int64
	flushed chan struct{}
}

type entry struct{ stream, line string }

// NewBuffer starts the writer goroutine; Close drains and stops it.
func NewBuffer(w LineWriter, max int64) *Buffer {
	b := &Buffer{w: w, max: max, flushed: make(chan struct{})}
	b.cond = sync.NewCond(&b.mu)
	// Owned by the Buffer: ends after Close once the queue is drained.
	go b.run()
	return b
}

// Write queues the line, or drops it when the buffer is full.
func (b *Buffer) Write(stream, line string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.size+int64(len(line)) > b.max {
		b.Dropped++
		return nil
	}
	b.q = append(b.q, entry{stream, line})
	b.size += int64(len(line))
	b.cond.Signal()
	return nil
}

func (b *Buffer) run() {
	defer close(b.flushed)
	for {
		b.mu.Lock()
		for len(b.q) == 0 && !b.done {
			b.cond.Wait()
		}
		if len(b.q) == 0 && b.done {
			b.mu.Unlock()
			return
		}
		e := b.q[0]
		b.q = b.q[1:]
		b.size -= int64(len(e.line))
		b.mu.Unlock()
		_ = b.w.Write(e.stream, e.line)
	}
}

// Close writes what is queued and stops the writer.
func (b *Buffer) Close() {
	b.mu.Lock()
	b.done = true
	b.cond.Signal()
	b.mu.Unlock()
	<-b.flushed
}
