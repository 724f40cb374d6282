// Command kanto-demo runs the stack's main job on this machine and prints a
// timeline (see package demo). `make demo` builds kanto and runs it: by
// default the firmware campaign in QEMU; -connectivity runs the connector
// demo on loopback instead (`make demo-connectivity`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kantofw/kanto/services/demo"
	"github.com/kantofw/kanto/services/internal/lifecycle"
)

func main() {
	kanto := flag.String("kanto", "bin/kanto", "the kanto binary (static linux/amd64: it also goes into the firmware images)")
	connectivity := flag.Bool("connectivity", false, "run the connectivity demo (connector and cloud peer on loopback, no QEMU)")
	n := flag.Int("messages", 600, "-connectivity: telemetry messages published around the outage")
	outage := flag.Duration("outage", 3*time.Second, "-connectivity: how long the cloud is away")
	out := flag.String("out", "", "firmware demo: images, device disk and console log (default out/demo)")
	flag.Parse()
	// The demos link and copy it from other directories.
	if abs, err := filepath.Abs(*kanto); err == nil {
		*kanto = abs
	}
	ctx, stop := lifecycle.SignalContext(context.Background(), os.Stderr)
	defer stop()
	if *connectivity {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		if err := demo.Run(ctx, demo.Options{Kanto: *kanto, Out: os.Stdout, Messages: *n, Outage: *outage}); err != nil {
			fmt.Fprintln(os.Stderr, "demo failed:", err)
			os.Exit(1)
		}
		return
	}
	// A guard, not the target: the first build (kernel, Go binaries) takes
	// a few minutes, a cached run well under five.
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := demo.Campaign(ctx, demo.CampaignOptions{Kanto: *kanto, OutDir: *out, Out: os.Stdout})
	if err != nil {
		if errors.Is(err, demo.ErrStep) && res != nil && res.Console != "" {
			fmt.Fprintf(os.Stderr, "--- last console lines ---\n%s\n", tail(res.Console, 40))
		}
		fmt.Fprintf(os.Stderr, "demo failed after %.0fs: %v\n", time.Since(start).Seconds(), err)
		os.Exit(1)
	}
	fmt.Printf("demo passed in %.0fs\n", time.Since(start).Seconds())
}

func tail(s string, n int) string {
	end := len(s)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' && i != len(s)-1 {
			n--
			if n == 0 {
				return s[i+1 : end]
			}
		}
	}
	return s
}
