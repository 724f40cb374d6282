package providers

import (
	"context"
	"sync"
)

// Part is one slice of a file: number n (0-based), offset and size.
type Part struct {
	N         int
	Off, Size int64
}

// SplitParts cuts size bytes into parts of partSize (the last is shorter).
// A zero size gives no parts.
func SplitParts(size, partSize int64) []Part {
	var ps []Part
	for off, n := int64(0), 0; off < size; off, n = off+partSize, n+1 {
		ps = append(ps, Part{N: n, Off: off, Size: min(partSize, size-off)})
	}
	return ps
}

// EachPart runs do for every part with up to workers at once (at least
// 1). It stops handing out parts at the first error and returns it.
// progress, if set, gets the bytes of the parts finished so far.
func EachPart(ctx context.Context, parts []Part, workers int, progress Progress, do func(ctx context.Context, p Part) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers = max(1, min(workers, len(parts)))
	next := make(chan Part)
	var (
		mu    sync.Mutex
		first error
		done  int64
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		// Owned by EachPart; exits when next is closed.
		go func() {
			defer wg.Done()
			for p := range next {
				err := do(ctx, p)
				mu.Lock()
				if err != nil && first == nil {
					first = err
					cancel()
				}
				if err == nil {
					done += p.Size
					if progress != nil {
						progress(done)
					}
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, p := range parts {
		select {
		case next <- p:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = context.Cause(ctx)
	}
	return first
}
