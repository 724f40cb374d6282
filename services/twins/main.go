package twins

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

var errVersion = errors.New("version requested")

// LoadSettings parses args as upstream: defaults, the JSON file of
// -configFile, the provisioning file, then the flags given explicitly.
func LoadSettings(env *cli.Env, args []string) (Settings, error) {
	s, reapply, err := loadConfig(env, args)
	if err != nil {
		return s, err
	}
	_, err = provision(&s, reapply)
	return s, err
}

// loadConfig parses args without the provisioning file: defaults, the JSON
// file of -configFile, then the flags given explicitly. reapply sets those
// flags again (after the provisioning file is merged).
func loadConfig(env *cli.Env, args []string) (s Settings, reapply func(*Settings), err error) {
	s = Defaults()
	fs := cli.NewFlagSet(env, env.Name)
	var configFile string
	fs.StringVar(&configFile, "configFile", "", "JSON configuration file")
	version := fs.Bool("version", false, "print the version and exit")
	s.RegisterFlags(fs)
	err = config.Load(fs, args, "configFile", &s)
	switch {
	case errors.Is(err, flag.ErrHelp), errors.Is(err, config.ErrInvalid):
		return s, nil, err
	case errors.Is(err, config.ErrNotFound):
		fmt.Fprintf(env.Stderr, "warning: %v; using defaults and flags\n", err)
	case err != nil:
		return s, nil, fmt.Errorf("%w: %w", err, cli.ErrUsage)
	}
	if *version {
		return s, nil, errVersion
	}
	// Flags given explicitly win over the provisioning file: note their
	// values, as the file overwrites the fields they are bound to.
	given := map[string]string{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })
	reapply = func(dst *Settings) {
		again := flag.NewFlagSet("", flag.ContinueOnError)
		dst.RegisterFlags(again)
		for name, v := range given {
			if again.Lookup(name) != nil {
				_ = again.Set(name, v)
			}
		}
	}
	return s, reapply, nil
}

// Main is `kanto local-digital-twins` (symlink local-digital-twins).
func Main(ctx context.Context, env *cli.Env, args []string) error {
	base, reapply, err := loadConfig(env, args)
	if errors.Is(err, errVersion) {
		fmt.Fprintln(env.Stdout, "local-digital-twins (kanto)", env.Version)
		return nil
	}
	if err != nil {
		return err
	}
	// What the provisioning file cannot fix fails the start. A missing or
	// unusable identity does too without a provisioning file; with one, Run
	// reports it as a status and waits for the file (see the package doc).
	if err := base.ValidateStatic(); err != nil {
		return err
	}
	s := base
	_, err = provision(&s, reapply)
	if err == nil {
		err = s.Validate()
	}
	if err != nil && s.ProvisioningFile == "" {
		return err
	}
	e, err := uplink.ReadEnv(env.Getenv)
	if err != nil {
		return err
	}
	log, closer, err := uplink.StartLogging(s.Config, "local-digital-twins", e, env.Stderr)
	if err != nil {
		return err
	}
	defer closer.Close()
	log.Info("local digital twins starting", "localAddress", s.LocalAddress, "address", s.Address, "thingsDb", s.ThingsDB)
	return New(Options{Settings: base, Reapply: reapply, Env: e, Log: log, Notifier: lifecycle.NewNotifier(log)}).Run(ctx)
}
