// Command kanto is the multi-call binary of the device stack: `kanto <command>`
// or a symlink named after an upstream binary (suite-connector, kanto-cm, ...).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/lifecycle"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := lifecycle.SignalContext(context.Background(), os.Stderr)
	defer stop()
	os.Exit(run(ctx, os.Args, &cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}))
}

// run dispatches argv (argv[0] is the name the binary was called by) with
// env's streams.
func run(ctx context.Context, argv []string, env *cli.Env) int {
	env.Version = version
	name := filepath.Base(argv[0])
	args := argv[1:]
	if _, ok := commands[name]; !ok {
		if len(args) == 0 {
			usage(env)
			return 2
		}
		name, args = args[0], args[1:]
	}
	switch name {
	case "help", "-h", "--help", "-help":
		usage(env)
		return 0
	case "version", "-version", "--version":
		fmt.Fprintln(env.Stdout, version)
		return 0
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(env.Stderr, "kanto: unknown command %q (see 'kanto help')\n", name)
		return 2
	}
	env.Name = name
	err := cmd.main(ctx, env, args)
	code := cli.ExitCode(err)
	// An ExitError without an error was already reported by the command.
	var reported *cli.ExitError
	if code != 0 && err != nil && !(errors.As(err, &reported) && reported.Err == nil) {
		fmt.Fprintf(env.Stderr, "%s: %v\n", name, err)
	}
	return code
}

func usage(env *cli.Env) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage: kanto <command> [flags], or through a symlink named after the command\n\ncommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-22s %s\n", n, commands[n].summary)
	}
	b.WriteString("  help                   this list\n  version                print the version\n")
	fmt.Fprint(env.Stdout, b.String())
}
