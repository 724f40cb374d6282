// Package fwtool is the command-line face of the firmware update stack:
// `kanto bundle ...` (keygen, create, verify, inspect) and `kanto fw ...`
// (env, install, status, resume, commit, rollback, reboot, mark-bad,
// slots, identity). The work is done by firmware/..., ota and board; this
// package turns flags into their options and errors into exit codes.
package fwtool

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/services/internal/cli"
)

// parseInterspersed parses flags that may come after positional arguments
// ("inspect BUNDLE --json") and returns the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := cli.Parse(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// isTerminal reports whether w is a character device (progress lines are
// only drawn on terminals).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress draws a one-line progress bar on a terminal.
type progress struct {
	w     io.Writer
	on    bool
	label string
	last  time.Time
}

func newProgress(env *cli.Env, label string, quiet bool) *progress {
	return &progress{w: env.Stderr, on: !quiet && isTerminal(env.Stderr), label: label}
}

func (p *progress) update(done, total int64) {
	if !p.on {
		return
	}
	if done < total && time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	fmt.Fprintf(p.w, "\r%s %6.1f%% %s / %s", p.label, pct, human(done), human(total))
	if done >= total {
		fmt.Fprintln(p.w)
	}
}

// finish ends the line after a bar that did not reach 100%.
func (p *progress) finish() {
	if p.on && !p.last.IsZero() {
		fmt.Fprintf(p.w, "\r%s done%40s\n", p.label, "")
	}
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// verifyExit maps bundle rejections to exit status 1 with a clear category.
func verifyExit(err error) error {
	for _, cat := range []error{bundle.ErrSignature, bundle.ErrUntrusted, bundle.ErrIncompatible, bundle.ErrCorrupt, bundle.ErrTruncated, bundle.ErrTrailing, bundle.ErrFormat} {
		if errors.Is(err, cat) {
			return &cli.ExitError{Code: 1, Err: err}
		}
	}
	return err
}

func splitPair(s string) (string, string, bool) {
	k, v, ok := strings.Cut(s, "=")
	return k, v, ok && k != ""
}
