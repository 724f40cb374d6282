package connector

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/config"
	"github.com/kantofw/kanto/services/internal/lifecycle"
	"github.com/kantofw/kanto/services/internal/uplink"
)

// LoadSettings parses args the way upstream does: defaults, then the JSON
// file of -configFile, then the flags given explicitly. reapply re-applies
// those flags (used after the provisioning file is merged).
func LoadSettings(env *cli.Env, args []string) (s Settings, reapply func(*Settings), err error) {
	s = Defaults()
	fs := cli.NewFlagSet(env, env.Name)
	var configFile string
	fs.StringVar(&configFile, "configFile", "", "JSON configuration file")
	version := fs.Bool("version", false, "print the version and exit")
	s.RegisterFlags(fs)
	err = config.Load(fs, args, "configFile", &s)
	if errors.Is(err, flag.ErrHelp) {
		return s, nil, err
	}
	if err != nil && !errors.Is(err, config.ErrNotFound) {
		if errors.Is(err, config.ErrInvalid) {
			return s, nil, err
		}
		return s, nil, fmt.Errorf("%w: %w", err, cli.ErrUsage)
	}
	if errors.Is(err, config.ErrNotFound) {
		fmt.Fprintf(env.Stderr, "warning: %v; using defaults and flags\n", err)
	}
	if *version {
		return s, nil, errVersion
	}
	given := map[string]string{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })
	reapply = func(dst *Settings) {
		again := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
		dst.RegisterFlags(again)
		for name, v := range given {
			if again.Lookup(name) != nil {
				_ = again.Set(name, v)
			}
		}
	}
	return s, reapply, nil
}

var errVersion = errors.New("version requested")

// Main is `kanto suite-connector` (symlink suite-connector).
func Main(ctx context.Context, env *cli.Env, args []string) error {
	s, reapply, err := LoadSettings(env, args)
	if errors.Is(err, errVersion) {
		fmt.Fprintln(env.Stdout, "suite-connector (kanto)", env.Version)
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.ValidateStatic(); err != nil {
		return err
	}
	e, err := ReadEnv(env.Getenv)
	if err != nil {
		return err
	}
	log, closer, err := uplink.StartLogging(s.Config, "suite-connector", e.Env, env.Stderr)
	if err != nil {
		return err
	}
	defer closer.Close()
	c := New(Options{Settings: s, Reapply: reapply, Env: e, Log: log, Notifier: lifecycle.NewNotifier(log)})
	log.Info("suite connector starting", "localAddress", s.LocalAddress, "address", s.Address)
	return c.Run(ctx)
}
