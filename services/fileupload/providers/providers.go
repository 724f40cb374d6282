// Package providers holds what the storage providers share: their option
// map, the error categories a status reports, and the retry loop that lets
// an upload resume its unfinished parts after the connection drops.
package providers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Error categories.
var (
	// ErrMissingParam marks a start without a required option.
	ErrMissingParam = errors.New("missing parameter")
	// ErrInvalidParam marks an option with an unusable value.
	ErrInvalidParam = errors.New("invalid parameter")
	// ErrRejected marks an upload the server refused (credentials,
	// permissions, checksum, status); retrying will not help.
	ErrRejected = errors.New("upload rejected by the server")
	// ErrTransient marks a failure worth retrying (connection dropped).
	ErrTransient = errors.New("transient upload failure")
	// ErrInterrupted is the cause a caller cancels an upload with when it
	// should be resumed later (service shutdown): the parts already on the
	// server are kept rather than discarded.
	ErrInterrupted = errors.New("upload interrupted")
)

// Resumable reports whether the parts of a failed upload are worth
// keeping on the server: the connection stayed down or the upload was
// interrupted, as opposed to canceled, rejected or a changed file.
func Resumable(err error) bool {
	return errors.Is(err, ErrTransient) || errors.Is(err, ErrInterrupted)
}

// Options are a start operation's options, keys as sent by the backend.
type Options map[string]string

// Required returns the value of key or the upstream error message.
func (o Options) Required(key string) (string, error) {
	v := strings.TrimSpace(o[key])
	if v == "" {
		return "", fmt.Errorf("required parameter '%s' missing or empty: %w", key, ErrMissingParam)
	}
	return v, nil
}

// WithPrefix returns the options whose key starts with prefix, prefix cut.
func (o Options) WithPrefix(prefix string) map[string]string {
	out := map[string]string{}
	for k, v := range o {
		if rest, ok := strings.CutPrefix(k, prefix); ok && rest != "" {
			out[rest] = v
		}
	}
	return out
}

// Progress receives the bytes confirmed by the server so far (monotonic
// within one upload).
type Progress func(done int64)

// Retry settings shared by the providers.
type Retry struct {
	// Timeout is how long one part may keep failing with transient errors
	// before the upload fails; 0 means 2 minutes.
	Timeout time.Duration
	// Wait is the first pause between attempts (doubles, at most 5 s);
	// 0 means 200 ms.
	Wait time.Duration
}

// Do runs op until it succeeds, returns a non-transient error, ctx ends or
// the retry timeout passes. isTransient classifies op's errors.
func (r Retry) Do(ctx context.Context, isTransient func(error) bool, op func() error) error {
	timeout, wait := r.Timeout, r.Wait
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	if wait == 0 {
		wait = 200 * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if !isTransient(err) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
		wait = min(wait*2, 5*time.Second)
	}
}
