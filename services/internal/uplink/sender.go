package uplink

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/kantofw/kanto/services/internal/buffer"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// ErrRoute marks a buffered message that cannot be mapped to the cloud; it
// is set aside rather than retried.
var ErrRoute = errors.New("cannot route message")

// Route maps one buffered message to what goes to the cloud: none (the
// message is dropped as delivered, e.g. filtered), one or several messages.
// An error sets the message aside.
type Route func(e *buffer.Entry) ([]mqtt.Message, error)

// Publisher is the cloud side of a Sender (an *mqtt.Client).
type Publisher interface {
	PublishAsync(m mqtt.Message) <-chan error
}

var _ Publisher = (*mqtt.Client)(nil)

// PoisonLimit is how many times the cloud may drop the connection while
// the same message is the oldest in flight before it is set aside.
const PoisonLimit = 3

// Removal batching of delivered messages.
const (
	removeBatch = 1024
	removeEvery = 50 * time.Millisecond
)

// Sender forwards a buffer to the cloud, one connection at a time.
type Sender struct {
	Buf    *buffer.Buffer
	Route  Route
	Window int // in-flight messages; default 256
	Log    *slog.Logger

	mu     sync.Mutex
	poison map[uint64]int
}

type inflight struct {
	seq  uint64
	done []<-chan error
}

// Send forwards the buffer over pub until lost yields (the connection
// dropped), a publish fails, or ctx ends. Delivered messages are removed in
// order, in batches: a crash only re-sends a batch (at-least-once).
func (s *Sender) Send(ctx context.Context, pub Publisher, lost <-chan error) error {
	window := s.Window
	if window <= 0 {
		window = 256
	}
	var queue []inflight
	var last uint64
	var acked []uint64
	flushAt := time.Time{}
	flush := func() error {
		if len(acked) == 0 {
			return nil
		}
		err := s.Buf.Remove(false, acked...)
		s.mu.Lock()
		for _, q := range acked {
			delete(s.poison, q)
		}
		s.mu.Unlock()
		acked = acked[:0]
		return err
	}
	defer func() { _ = flush() }()
	tick := time.NewTicker(removeEvery)
	defer tick.Stop()
	// headDone collects the head entry's remaining acknowledgements (an
	// entry may map to several messages) without blocking; it reports
	// whether all are in.
	headDone := func() (bool, error) {
		for len(queue[0].done) > 0 {
			select {
			case err := <-queue[0].done[0]:
				if err != nil {
					return false, err
				}
			default:
				return false, nil
			}
			queue[0].done = queue[0].done[1:]
		}
		return true, nil
	}
	for {
		if len(queue) < window {
			es, err := s.Buf.Peek(last, window-len(queue))
			if err != nil {
				return err
			}
			for _, e := range es {
				last = e.Seq
				msgs, err := s.Route(e)
				if err != nil {
					s.Log.Warn("message set aside: cannot be sent to the cloud", "topic", e.Topic, "err", err)
					_ = s.Buf.Remove(true, e.Seq)
					continue
				}
				f := inflight{seq: e.Seq}
				for _, m := range msgs {
					f.done = append(f.done, pub.PublishAsync(m))
				}
				queue = append(queue, f)
			}
		}
		var head <-chan error
		if len(queue) > 0 {
			if len(queue[0].done) == 0 {
				head = closedErr
			} else {
				head = queue[0].done[0]
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-lost:
			s.notePoison(queue)
			return err
		case <-s.Buf.Notify():
		case <-tick.C:
			if len(acked) > 0 && time.Since(flushAt) >= removeEvery {
				if err := flush(); err != nil {
					return err
				}
			}
		case err := <-head:
			if err != nil {
				s.notePoison(queue)
				return err
			}
			if len(queue[0].done) > 0 {
				queue[0].done = queue[0].done[1:]
			}
			for len(queue) > 0 {
				ok, err := headDone()
				if err != nil {
					s.notePoison(queue)
					return err
				}
				if !ok {
					break
				}
				if len(acked) == 0 {
					flushAt = time.Now()
				}
				acked = append(acked, queue[0].seq)
				queue = queue[1:]
			}
			if len(acked) >= removeBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
}

var closedErr = func() chan error {
	ch := make(chan error)
	close(ch)
	return ch
}()

func (s *Sender) notePoison(queue []inflight) {
	if len(queue) == 0 {
		return
	}
	seq := queue[0].seq
	s.mu.Lock()
	if s.poison == nil {
		s.poison = map[uint64]int{}
	}
	s.poison[seq]++
	strikes := s.poison[seq]
	if strikes >= PoisonLimit {
		delete(s.poison, seq)
	}
	s.mu.Unlock()
	if strikes >= PoisonLimit {
		s.Log.Error("message set aside: the cloud dropped the connection each time it was sent", "seq", seq, "strikes", strikes)
		_ = s.Buf.Remove(true, seq)
	}
}
