// Command kanto-demo runs the stack's main job on this machine and prints a
// timeline (see package demo). `make demo` builds kanto and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/kantofw/kanto/services/demo"
	"github.com/kantofw/kanto/services/internal/lifecycle"
)

func main() {
	kanto := flag.String("kanto", "bin/kanto", "the kanto binary")
	n := flag.Int("messages", 600, "telemetry messages published around the outage")
	outage := flag.Duration("outage", 3*time.Second, "how long the cloud is away")
	flag.Parse()
	ctx, stop := lifecycle.SignalContext(context.Background(), os.Stderr)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := demo.Run(ctx, demo.Options{Kanto: *kanto, Out: os.Stdout, Messages: *n, Outage: *outage}); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}
