package awsconnector

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

// LoadSettings parses args as upstream: defaults, the JSON file of
// -configFile, then the flags given explicitly.
func LoadSettings(env *cli.Env, args []string) (Settings, bool, error) {
	s := Defaults()
	fs := cli.NewFlagSet(env, env.Name)
	var configFile string
	fs.StringVar(&configFile, "configFile", "", "JSON configuration file")
	version := fs.Bool("version", false, "print the version and exit")
	s.RegisterFlags(fs)
	err := config.Load(fs, args, "configFile", &s)
	switch {
	case errors.Is(err, flag.ErrHelp), errors.Is(err, config.ErrInvalid):
		return s, false, err
	case errors.Is(err, config.ErrNotFound):
		fmt.Fprintf(env.Stderr, "warning: %v; using defaults and flags\n", err)
	case err != nil:
		return s, false, fmt.Errorf("%w: %w", err, cli.ErrUsage)
	}
	return s, *version, nil
}

// Main is `kanto aws-connector` (symlink aws-connector).
func Main(ctx context.Context, env *cli.Env, args []string) error {
	s, version, err := LoadSettings(env, args)
	if err != nil {
		return err
	}
	if version {
		fmt.Fprintln(env.Stdout, "aws-connector (kanto)", env.Version)
		return nil
	}
	if err := s.Validate(); err != nil {
		return err
	}
	e, err := uplink.ReadEnv(env.Getenv)
	if err != nil {
		return err
	}
	log, closer, err := uplink.StartLogging(s.Config, "aws-connector", e, env.Stderr)
	if err != nil {
		return err
	}
	defer closer.Close()
	log.Info("aws connector starting", "localAddress", s.LocalAddress, "address", s.Address)
	return New(Options{Settings: s, Env: e, Log: log, Notifier: lifecycle.NewNotifier(log)}).Run(ctx)
}
