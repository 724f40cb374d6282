// Package cli holds what every command of the multi-call binary shares: the
// command signature, the usage-error category and its mapping to exit codes.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

// Main is the entry point of one command of the kanto binary. args excludes
// the command name. Returning nil or context.Canceled exits 0.
type Main func(ctx context.Context, env *Env, args []string) error

// Env is what the binary hands to a command: the standard streams and the
// name it was invoked as (a symlink name or "kanto <cmd>").
type Env struct {
	Name   string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads the environment; tests replace it.
	Getenv func(string) string
	// Version is the build's version (kanto's -X main.version), printed by
	// the services' -version flags.
	Version string
}

// ErrUsage marks a command line the command cannot run with. main exits 2.
var ErrUsage = errors.New("usage")

// Usagef returns an error that wraps ErrUsage.
func Usagef(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, ErrUsage)...)
}

// ExitError carries an explicit exit code, for commands whose scripts rely
// on specific codes (kanto-cm, bundle verify).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode maps a command's result to the process exit code.
func ExitCode(err error) int {
	var ee *ExitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp), errors.Is(err, context.Canceled):
		return 0
	case errors.As(err, &ee):
		return ee.Code
	case errors.Is(err, ErrUsage):
		return 2
	default:
		return 1
	}
}

// NewFlagSet returns a flag set that reports errors instead of exiting, and
// prints its usage to env.Stderr.
func NewFlagSet(env *Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// Parse parses args, turning flag errors into usage errors.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%s: %w: %w", fs.Name(), err, ErrUsage)
	}
	return nil
}
