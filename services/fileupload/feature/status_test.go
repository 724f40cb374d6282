package feature

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kantofw/kanto/services/internal/logging"
)

// TestStatusQueueOrderAndOverflow: changes are published in order; while
// the publisher is stuck, only the newest `limit` changes are kept.
func TestStatusQueueOrderAndOverflow(t *testing.T) {
	block := make(chan struct{})
	var mu sync.Mutex
	var got []string
	q := newStatusQueue(3, logging.Discard(), func(_ context.Context, s Status) error {
		<-block
		mu.Lock()
		got = append(got, s.CorrelationID)
		mu.Unlock()
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); q.run(ctx) }()
	q.add(Status{CorrelationID: "0"})
	// Wait until "0" is being published (popped), then queue 5 more.
	for {
		q.mu.Lock()
		busy := q.busy
		q.mu.Unlock()
		if busy {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i <= 5; i++ {
		q.add(Status{CorrelationID: fmt.Sprint(i)})
	}
	close(block)
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer fcancel()
	q.flush(fctx)
	cancel()
	<-done
	want := []string{"0", "3", "4", "5"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("published %v, want %v", got, want)
	}
}
