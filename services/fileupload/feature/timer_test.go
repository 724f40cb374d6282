package feature

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock fires timers when Advance passes their deadline.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
	added  chan struct{}
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, added: make(chan struct{}, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), ch: ch})
	c.mu.Unlock()
	c.added <- struct{}{}
	return ch, func() bool { return true }
}

// fireNext waits until the executor arms a timer (true) or exits (false),
// then moves the clock to the timer's deadline and fires it.
func (c *fakeClock) fireNext(t *testing.T, e *executor) bool {
	t.Helper()
	select {
	case <-c.added:
	case <-e.done:
		return false
	case <-time.After(10 * time.Second):
		t.Fatal("executor neither armed a timer nor exited")
	}
	c.mu.Lock()
	tm := c.timers[len(c.timers)-1]
	c.timers = c.timers[:len(c.timers)-1]
	if tm.at.After(c.now) {
		c.now = tm.at
	}
	tm.ch <- c.now
	c.mu.Unlock()
	return true
}

func TestExecutorWindow(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	ptr := func(t time.Time) *time.Time { return &t }
	for _, tc := range []struct {
		name     string
		from, to *time.Time
		fires    int
		want     []time.Duration // run times relative to t0
		exits    bool
	}{
		{"now, every hour, until 2h30", nil, ptr(t0.Add(150 * time.Minute)), 5, []time.Duration{0, time.Hour, 2 * time.Hour}, true},
		{"starts in 2h, no end", ptr(t0.Add(2 * time.Hour)), nil, 2, []time.Duration{2 * time.Hour, 3 * time.Hour}, false},
		{"window over", ptr(t0.Add(-2 * time.Hour)), ptr(t0.Add(-time.Hour)), 3, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeClock(t0)
			var mu sync.Mutex
			var runs []time.Duration
			e := startExecutor(c, tc.from, tc.to, time.Hour, func() {
				mu.Lock()
				runs = append(runs, c.Now().Sub(t0))
				mu.Unlock()
			})
			exited := false
			for i := 0; i < tc.fires && !exited; i++ {
				exited = !c.fireNext(t, e)
			}
			if !exited {
				e.halt()
			}
			if exited != tc.exits {
				t.Errorf("exited %v, want %v", exited, tc.exits)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(runs, tc.want) {
				t.Errorf("runs at %v, want %v", runs, tc.want)
			}
		})
	}
}
