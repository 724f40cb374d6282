// Package lifecycle turns process signals into context cancellation and tells
// systemd about readiness, shutdown and liveness (sd_notify and the watchdog).
package lifecycle

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// SignalContext returns a context cancelled on SIGINT or SIGTERM. SIGUSR1
// writes all goroutine stacks to w, which is how a hung daemon is debugged
// on a device. A second SIGINT/SIGTERM exits at once. stop releases the
// handlers.
func SignalContext(parent context.Context, w io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM, syscall.SIGUSR1)
	done := make(chan struct{})
	// Owned by SignalContext; exits when stop is called.
	go func() {
		terminating := false
		for {
			select {
			case <-done:
				return
			case s := <-ch:
				if s == syscall.SIGUSR1 {
					_ = pprof.Lookup("goroutine").WriteTo(w, 2)
					continue
				}
				if terminating {
					fmt.Fprintf(w, "second %v, exiting now\n", s)
					os.Exit(130)
				}
				terminating = true
				cancel(fmt.Errorf("signal %v: %w", s, context.Canceled))
			}
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(context.Canceled)
	}
}
