package connector

import (
	"context"
	"strconv"

	"golang.org/x/time/rate"
)

// rateLimiter is MESSAGE_RATE: a token bucket with burst 1.
type rateLimiter struct{ l *rate.Limiter }

func newRateLimiter(perSecond float64) *rateLimiter {
	return &rateLimiter{l: rate.NewLimiter(rate.Limit(perSecond), 1)}
}

func (r *rateLimiter) wait(ctx context.Context) error { return r.l.Wait(ctx) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
