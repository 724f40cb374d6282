package files

import (
	"sync"
	"time"
)

// Limiter caps the bytes per second read by every upload that shares it (a
// token bucket with a 64 KiB burst). A nil *Limiter does not limit.
type Limiter struct {
	rate  float64 // bytes per second
	burst int

	mu     sync.Mutex
	tokens float64
	last   time.Time
	sleep  func(time.Duration) // seam for tests
	now    func() time.Time
}

// NewLimiter returns a limiter of bytesPerSec, or nil when it is <= 0.
func NewLimiter(bytesPerSec int64) *Limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	burst := 64 << 10
	if int64(burst) > bytesPerSec {
		burst = int(bytesPerSec)
	}
	return &Limiter{rate: float64(bytesPerSec), burst: burst, tokens: float64(burst), sleep: time.Sleep, now: time.Now}
}

// wait takes n tokens, sleeping while the bucket is in debt.
func (l *Limiter) wait(n int) {
	l.mu.Lock()
	now := l.now()
	if !l.last.IsZero() {
		l.tokens += now.Sub(l.last).Seconds() * l.rate
		if l.tokens > float64(l.burst) {
			l.tokens = float64(l.burst)
		}
	}
	l.last = now
	l.tokens -= float64(n)
	var d time.Duration
	if l.tokens < 0 {
		d = time.Duration(-l.tokens / l.rate * float64(time.Second))
	}
	l.mu.Unlock()
	if d > 0 {
		l.sleep(d)
	}
}
