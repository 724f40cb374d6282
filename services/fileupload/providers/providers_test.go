package providers

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestSplitParts(t *testing.T) {
	for _, tc := range []struct {
		size, part int64
		want       string
	}{
		{0, 10, "[]"},
		{10, 10, "[{0 0 10}]"},
		{25, 10, "[{0 0 10} {1 10 10} {2 20 5}]"},
	} {
		if got := fmt.Sprint(SplitParts(tc.size, tc.part)); got != tc.want {
			t.Errorf("%d/%d: got %s, want %s", tc.size, tc.part, got, tc.want)
		}
	}
}

func TestEachPart(t *testing.T) {
	parts := SplitParts(100, 10)
	var sum atomic.Int64
	var last int64
	err := EachPart(context.Background(), parts, 3, func(n int64) {
		if n < last {
			t.Errorf("progress went back from %d to %d", last, n)
		}
		last = n
	}, func(_ context.Context, p Part) error {
		sum.Add(p.Size)
		return nil
	})
	if err != nil || sum.Load() != 100 || last != 100 {
		t.Errorf("err %v, sum %d, progress %d", err, sum.Load(), last)
	}

	boom := errors.New("boom")
	var ran atomic.Int32
	err = EachPart(context.Background(), parts, 2, nil, func(ctx context.Context, p Part) error {
		ran.Add(1)
		if p.N == 1 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || ran.Load() == int32(len(parts)) {
		t.Errorf("err %v after %d parts: the first error must stop the rest", err, ran.Load())
	}
}

func TestRetry(t *testing.T) {
	transient := func(err error) bool { return errors.Is(err, ErrTransient) }
	n := 0
	err := Retry{Wait: time.Millisecond}.Do(context.Background(), transient, func() error {
		n++
		if n < 3 {
			return ErrTransient
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Errorf("err %v after %d attempts", err, n)
	}
	n = 0
	err = Retry{Wait: time.Millisecond}.Do(context.Background(), transient, func() error { n++; return ErrRejected })
	if !errors.Is(err, ErrRejected) || n != 1 {
		t.Errorf("a rejection was retried: %v, %d attempts", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = Retry{Wait: time.Millisecond}.Do(ctx, transient, func() error { return ErrTransient })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v after cancel", err)
	}
	err = Retry{Wait: time.Millisecond, Timeout: 5 * time.Millisecond}.Do(context.Background(), transient, func() error { return ErrTransient })
	if !errors.Is(err, ErrTransient) || err.Error() == ErrTransient.Error() {
		t.Errorf("timeout: %v", err)
	}
}
