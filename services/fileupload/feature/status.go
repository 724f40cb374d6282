package feature

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// State is an upload state, as upstream.
type State string

// Upload states. PAUSED exists upstream but is never used.
const (
	Pending   State = "PENDING"
	Uploading State = "UPLOADING"
	Paused    State = "PAUSED"
	Success   State = "SUCCESS"
	Failed    State = "FAILED"
	Canceled  State = "CANCELED"
)

func (s State) terminal() bool { return s == Success || s == Failed || s == Canceled }

// Status is the lastUpload property. Times are RFC 3339 and show Go's zero
// time when unset; there is no omitempty, as upstream.
type Status struct {
	CorrelationID string            `json:"correlationId"`
	State         State             `json:"state"`
	StartTime     time.Time         `json:"startTime"`
	EndTime       time.Time         `json:"endTime"`
	StatusCode    string            `json:"statusCode"`
	Message       string            `json:"message"`
	Progress      int               `json:"progress"`
	Info          map[string]string `json:"info"`
	// Bytes and Total are beyond upstream: the bytes confirmed by the
	// storage so far and the total to upload, when every size is known.
	Bytes int64 `json:"bytes,omitempty"`
	Total int64 `json:"total,omitempty"`
}

// statusQueue publishes status changes in order from one goroutine. At most
// limit changes wait; on overflow the oldest is dropped (upstream's
// 100-entry ring buffer), so a slow broker never blocks an upload.
type statusQueue struct {
	publish func(context.Context, Status) error
	log     *slog.Logger
	limit   int

	mu      sync.Mutex
	pending []Status
	wake    chan struct{}
	busy    bool
}

func newStatusQueue(limit int, log *slog.Logger, publish func(context.Context, Status) error) *statusQueue {
	q := &statusQueue{publish: publish, log: log, limit: limit, wake: make(chan struct{}, 1)}
	return q
}

// add queues a copy of s.
func (q *statusQueue) add(s Status) {
	if s.Info != nil {
		info := make(map[string]string, len(s.Info))
		for k, v := range s.Info {
			info[k] = v
		}
		s.Info = info
	}
	q.mu.Lock()
	if len(q.pending) >= q.limit {
		q.log.Warn("status queue full, dropping the oldest change", "correlationId", q.pending[0].CorrelationID)
		q.pending = q.pending[1:]
	}
	q.pending = append(q.pending, s)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run publishes until ctx ends. It is owned by the Feature and exits with
// the context passed to Feature.Run.
func (q *statusQueue) run(ctx context.Context) {
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.busy = false
			q.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		s := q.pending[0]
		q.pending = q.pending[1:]
		q.busy = true
		q.mu.Unlock()
		if err := q.publish(ctx, s); err != nil && ctx.Err() == nil {
			q.log.Warn("publish lastUpload failed", "correlationId", s.CorrelationID, "state", s.State, "err", err)
		}
	}
}

// flush waits until everything queued was handed to the broker, or ctx
// ends.
func (q *statusQueue) flush(ctx context.Context) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		q.mu.Lock()
		done := len(q.pending) == 0 && !q.busy
		q.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
