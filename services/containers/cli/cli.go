// Package cli is `kanto-cm`, the command line client of container
// management. Its commands, flags, output formats and exit codes are those
// of Eclipse Kanto's kanto-cm: errors print "Error: <message>" on stderr and
// exit 1. It talks to the daemon over the local gRPC API only.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	ctrsvc "github.com/kantofw/kanto/services/containers/api/services/containers"
	imgsvc "github.com/kantofw/kanto/services/containers/api/services/images"
	syssvc "github.com/kantofw/kanto/services/containers/api/services/sysinfo"
	kcli "github.com/kantofw/kanto/services/internal/cli"
)

// DefaultHost is the daemon's default socket.
const DefaultHost = "/run/container-management/container-management.sock"

// globals are the flags every command accepts.
type globals struct {
	host    string
	timeout int
	debug   bool
}

func (g *globals) register(fs *flagSet) {
	fs.String(&g.host, "host", "", DefaultHost, "Where the daemon's API listens: a unix socket path or tcp://host:port")
	fs.Int(&g.timeout, "timeout", "", 30, "Seconds to wait for the connection to the daemon")
	fs.Bool(&g.debug, "debug", "", false, "Log at debug level")
}

// app is one invocation.
type app struct {
	env  *kcli.Env
	g    globals
	conn *grpc.ClientConn
	ctrs ctrsvc.ContainersClient
	sys  syssvc.SystemInfoClient
	imgs imgsvc.ImagesClient
}

type command struct {
	name, use, short, example string
	run                       func(ctx context.Context, a *app, args []string) error
	// flags registers the command's own flags.
	flags func(fs *flagSet)
	// noDial: the command needs no daemon.
	noDial bool
	// noInterspersed: flags end at the first argument (create, whose
	// arguments after the image are the container's command).
	noInterspersed bool
	// nargs, when set, checks the number of positional arguments before
	// the daemon is dialled (as upstream's cobra Args do).
	nargs argCount
}

func commands() []*command {
	return []*command{
		createCommand(), getCommand(), listCommand(), logsCommand(), removeCommand(), renameCommand(),
		startCommand(), stopCommand(), updateCommand(), sysinfoCommand(),
		pauseCommand(), unpauseCommand(), pullCommand(), importCommand(), pruneCommand(), imagesCommand(),
		completionCommand(),
	}
}

// Main is `kanto kanto-cm`.
func Main(ctx context.Context, env *kcli.Env, args []string) error {
	a := &app{env: env}
	err := a.main(ctx, args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return nil
	}
	fmt.Fprintf(env.Stderr, "Error: %s\n", message(err))
	return &kcli.ExitError{Code: 1}
}

// message is what the user sees: the gRPC status message with upstream's
// "rpc error: code = ... desc = ..." form kept for daemon errors.
func message(err error) string {
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("rpc error: code = %s desc = %s", s.Code(), s.Message())
	}
	return err.Error()
}

func (a *app) main(ctx context.Context, args []string) error {
	// Global flags may come before the command.
	root := newFlagSet(a.env, "kanto-cm", "kanto-cm [command]")
	a.g.register(root)
	root.help = a.rootUsage
	if err := root.parseFlags(args); err != nil {
		return err
	}
	args = root.Args()
	if len(args) == 0 {
		a.rootUsage()
		return nil
	}
	name := args[0]
	if name == "help" {
		if len(args) > 1 {
			for _, c := range commands() {
				if c.name == args[1] {
					a.newCmdFlags(c).help()
					return nil
				}
			}
		}
		a.rootUsage()
		return nil
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		fs := a.newCmdFlags(c)
		pos, err := fs.parse(args[1:], !c.noInterspersed)
		if err != nil {
			return err
		}
		if c.nargs != nil {
			if err := c.nargs(c.name, pos); err != nil {
				return err
			}
		}
		if !c.noDial {
			if err := a.dial(ctx); err != nil {
				return err
			}
			defer a.conn.Close()
		}
		return c.run(ctx, a, pos)
	}
	return fmt.Errorf("unknown command %q for %q", name, "kanto-cm")
}

func (a *app) newCmdFlags(c *command) *flagSet {
	fs := newFlagSet(a.env, "kanto-cm "+c.name, c.use)
	if c.flags != nil {
		c.flags(fs)
	}
	saved := a.g // values given before the command stay the defaults
	a.g.register(fs)
	a.g = saved
	fs.help = func() {
		w := a.env.Stdout
		fmt.Fprintf(w, "%s\n\nUsage:\n  kanto-cm %s\n", c.short, c.use)
		if c.example != "" {
			fmt.Fprintf(w, "\nExamples:\n%s\n", c.example)
		}
		fmt.Fprintf(w, "\nFlags:\n")
		fs.printDefaults(w)
	}
	return fs
}

func (a *app) rootUsage() {
	w := a.env.Stdout
	fmt.Fprint(w, "Eclipse Kanto container management CLI\n\nUsage:\n  kanto-cm [command]\n\nAvailable Commands:\n")
	cs := commands()
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.short)
	}
	fmt.Fprint(w, "\nFlags:\n")
	fs := newFlagSet(a.env, "kanto-cm", "")
	var g globals
	g.register(fs)
	fs.printDefaults(w)
	fmt.Fprint(w, "\nUse \"kanto-cm [command] --help\" for more information about a command.\n")
}

// dial connects to the daemon; an unreachable daemon is reported as
// upstream does: "error while dialing <addr>: ...".
func (a *app) dial(ctx context.Context) error {
	target, err := dialTarget(a.g.host)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, time.Duration(a.g.timeout)*time.Second)
	defer cancel()
	//nolint:staticcheck // DialContext with WithBlock gives upstream's dial-timeout semantics.
	conn, err := grpc.DialContext(dctx, target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithBlock())
	if err != nil {
		return fmt.Errorf("error while dialing %s: %w", a.g.host, err)
	}
	a.conn = conn
	a.ctrs = ctrsvc.NewContainersClient(conn)
	a.sys = syssvc.NewSystemInfoClient(conn)
	a.imgs = imgsvc.NewImagesClient(conn)
	return nil
}

func dialTarget(host string) (string, error) {
	switch {
	case strings.HasPrefix(host, "unix://"):
		return "unix://" + strings.TrimPrefix(host, "unix://"), nil
	case strings.HasPrefix(host, "tcp://"), strings.HasPrefix(host, "tcp4://"), strings.HasPrefix(host, "tcp6://"):
		_, rest, _ := strings.Cut(host, "://")
		return "passthrough:///" + rest, nil
	case strings.Contains(host, "://"):
		return "", fmt.Errorf("unsupported host %s", host)
	}
	return "unix://" + host, nil
}

func (a *app) out() io.Writer { return a.env.Stdout }
