// Command kanto is a stand-in for the multi-call binary with only the
// container-management commands. Tests fall back to it when the full binary
// does not build (other services are edited in the same checkout).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	cmcli "github.com/kantofw/kanto/services/containers/cli"
	cmdaemon "github.com/kantofw/kanto/services/containers/daemon"
	"github.com/kantofw/kanto/services/containers/logdriver"
	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/lifecycle"
)

var commands = map[string]cli.Main{
	"container-management":     cmdaemon.Main,
	"container-management-log": logdriver.Main,
	"kanto-cm":                 cmcli.Main,
}

func main() {
	ctx, stop := lifecycle.SignalContext(context.Background(), os.Stderr)
	env := &cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	name, args := filepath.Base(os.Args[0]), os.Args[1:]
	if _, ok := commands[name]; !ok && len(args) > 0 {
		name, args = args[0], args[1:]
	}
	m, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown command %q\n", name)
		os.Exit(2)
	}
	env.Name = name
	err := m(ctx, env, args)
	stop()
	code := cli.ExitCode(err)
	var reported *cli.ExitError
	if code != 0 && err != nil && !(errors.As(err, &reported) && reported.Err == nil) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	}
	os.Exit(code)
}
