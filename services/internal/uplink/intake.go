package uplink

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/kantofw/kanto/services/internal/buffer"
)

// Intake writes messages to the buffer in as few fsyncs as possible and
// acknowledges each one (to the local broker) only once it is on disk.
type Intake struct {
	buf   *buffer.Buffer
	log   *slog.Logger
	inbox chan pending
}

type pending struct {
	e   *buffer.Entry
	ack func()
}

// NewIntake returns an intake for buf; Run drains it.
func NewIntake(buf *buffer.Buffer, log *slog.Logger) *Intake {
	return &Intake{buf: buf, log: log, inbox: make(chan pending, 256)}
}

// Put queues e (nil: nothing to store, only ack in order); ack runs once it is stored (or refused for good). It
// blocks while the intake is busy, which pushes back on the broker.
func (in *Intake) Put(ctx context.Context, e *buffer.Entry, ack func()) {
	select {
	case in.inbox <- pending{e: e, ack: ack}:
	case <-ctx.Done():
	}
}

// Run is the intake's loop; it returns when ctx ends.
func (in *Intake) Run(ctx context.Context) {
	for {
		var batch []pending
		select {
		case <-ctx.Done():
			return
		case p := <-in.inbox:
			batch = append(batch, p)
		}
	drain:
		for len(batch) < 256 {
			select {
			case p := <-in.inbox:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		// A nil entry only keeps its acknowledgement in order (a message
		// handled without buffering).
		var entries []*buffer.Entry
		for _, p := range batch {
			if p.e != nil {
				entries = append(entries, p.e)
			}
		}
		// On a write error (a full disk) keep the messages unacknowledged
		// and retry, so the broker keeps them.
		for len(entries) > 0 && !in.store(entries) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		for _, p := range batch {
			if p.ack != nil {
				p.ack()
			}
		}
	}
}

func (in *Intake) store(entries []*buffer.Entry) bool {
	evicted, err := in.buf.Put(entries...)
	switch {
	case err == nil:
		if evicted > 0 {
			in.log.Warn("offline buffer full: oldest messages dropped", "dropped", evicted, "droppedTotal", in.buf.Stats().Dropped)
		}
		return true
	case errors.Is(err, buffer.ErrFull), errors.Is(err, buffer.ErrTooLarge):
		for _, e := range entries {
			if _, err := in.buf.Put(e); err != nil {
				in.log.Warn("message not buffered", "topic", e.Topic, "bytes", len(e.Payload), "err", err)
			}
		}
		return true
	default:
		in.log.Error("cannot write the offline buffer; holding messages at the broker", "err", err)
		return false
	}
}
