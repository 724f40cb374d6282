package fwagent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/kantofw/kanto/board"
	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/firmware/slot"
	"github.com/kantofw/kanto/ota"
	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/config"
	"github.com/kantofw/kanto/services/internal/lifecycle"
	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/store"
	"github.com/kantofw/kanto/services/internal/updateagent"
	"github.com/kantofw/kanto/services/softwareupdate"
)

// Config of `kanto fw-update-agent`.
type Config struct {
	Broker      string `json:"broker"`
	Domain      string `json:"domain"`
	Slots       string `json:"slots"`
	Keyring     string `json:"keyring"`
	StateDir    string `json:"stateDir"` // ota.db, agent.db and downloads
	BaseVersion string `json:"baseVersion"`
	BoardHooks  string `json:"boardHooks"`
	// HealthChecks is a directory of health check executables (exit 0 =
	// healthy) that judge a trial boot before it is committed; empty or
	// missing: no checks, a booted trial slot is committed.
	HealthChecks string `json:"healthChecks"`
	logging.Config
}

// Defaults are the packaged defaults.
func Defaults() Config {
	return Config{Broker: "tcp://localhost:1883", Domain: "firmware", Slots: "/etc/kanto/slots.json",
		Keyring: "/etc/kanto/keyring.pem", StateDir: "/var/lib/kanto-fw", BaseVersion: "0",
		BoardHooks: "/etc/kanto/board.d", Config: logging.Defaults("")}
}

// healthCheckTimeout bounds each health check executable.
const healthCheckTimeout = 2 * time.Minute

// Deps are injected by main or tests.
type Deps struct {
	Log      *slog.Logger
	Rebooter ota.Rebooter // the board hook; default reboot(2)
	Checks   []ota.HealthCheck
	BootID   func() (string, error)
}

// Main is `kanto fw-update-agent`.
func Main(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, env.Name)
	cfg := Defaults()
	var file string
	fs.StringVar(&file, "configFile", "", "JSON config file")
	fs.StringVar(&cfg.Broker, "broker", cfg.Broker, "local MQTT broker")
	fs.StringVar(&cfg.Domain, "domain", cfg.Domain, "Update Agent API domain")
	fs.StringVar(&cfg.Slots, "slots", cfg.Slots, "slots file")
	fs.StringVar(&cfg.Keyring, "keyring", cfg.Keyring, "bundle keyring (PEM)")
	fs.StringVar(&cfg.StateDir, "stateDir", cfg.StateDir, "persistent state folder")
	fs.StringVar(&cfg.BaseVersion, "baseVersion", cfg.BaseVersion, "version of a slot without a recorded version (default: the slots file's baseVersion, else 0)")
	fs.StringVar(&cfg.BoardHooks, "boardHooks", cfg.BoardHooks, "board hook executables (reboot)")
	fs.StringVar(&cfg.HealthChecks, "healthChecks", cfg.HealthChecks, "directory of health check executables judging a trial boot (empty: none)")
	cfg.Config.RegisterFlags(fs)
	err := config.Load(fs, args, "configFile", &cfg)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return err
	case errors.Is(err, config.ErrNotFound):
		fmt.Fprintf(env.Stderr, "warning: %v\n", err)
	case err != nil:
		return fmt.Errorf("%w: %w", err, cli.ErrUsage)
	}
	log, closer, err := logging.New(cfg.Config, "fw-update-agent", env.Stderr)
	if err != nil {
		return fmt.Errorf("%w: %w", err, cli.ErrUsage)
	}
	defer closer.Close()
	// Without health checks a booted trial slot is committed.
	var checks []ota.HealthCheck
	if cfg.HealthChecks != "" {
		if checks, err = ota.ScriptsDir(cfg.HealthChecks, healthCheckTimeout); err != nil {
			return err
		}
	}
	return Run(ctx, cfg, Deps{Log: log, Rebooter: &board.Hooks{Dir: cfg.BoardHooks, Log: log}, Checks: checks})
}

// Run resumes the OTA agent (the health verdict after a reboot) and then
// serves the firmware domain until ctx ends.
func Run(ctx context.Context, cfg Config, d Deps) error {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	slots, err := slot.Load(cfg.Slots)
	if err != nil {
		return err
	}
	kr, err := bundle.LoadKeyring(cfg.Keyring)
	if err != nil {
		return err
	}
	if d.Rebooter == nil {
		d.Rebooter = &board.Hooks{Dir: cfg.BoardHooks, Log: d.Log}
	}
	oa, err := ota.New(ota.Config{DBPath: filepath.Join(cfg.StateDir, "ota.db"), Slots: slots, Keyring: kr},
		ota.Deps{Log: d.Log, Rebooter: d.Rebooter, Checks: d.Checks, BootID: d.BootID})
	if err != nil {
		return err
	}
	defer oa.Close()
	if r, err := oa.Resume(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		d.Log.Error("ota resume", "state", r.State, "err", err)
	}
	db, err := store.Open(filepath.Join(cfg.StateDir, "agent.db"), "fw-update-agent", updateagent.Migrations)
	if err != nil {
		return err
	}
	defer db.Close()
	dl, err := softwareupdate.NewDownloader(3, 5*time.Second, "", d.Log)
	if err != nil {
		return err
	}
	base := cfg.BaseVersion
	if (cfg.BaseVersion == "" || cfg.BaseVersion == Defaults().BaseVersion) && slots.BaseVersion != "" {
		// One place for the factory version: the slots file, which the
		// installer's downgrade check reads too.
		base = slots.BaseVersion
	}
	dom := &Domain{Name: cfg.Domain, OTA: oa, Keyring: kr, Compatible: slots.Compatible, Downloader: dl,
		WorkDir: filepath.Join(cfg.StateDir, "downloads"), BaseVersion: base, Log: d.Log}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	a := updateagent.New(updateagent.Options{Domain: cfg.Domain, DB: db, Log: d.Log,
		MQTT: mqtt.Options{URL: cfg.Broker, ClientID: "fw-update-agent-" + hex.EncodeToString(b), CleanSession: true, AutoReconnect: true}}, dom)
	// Ready once the OTA state is resumed: the health verdict of a trial
	// boot is in, and the domain serves (it connects to the broker itself).
	n := lifecycle.NewNotifier(d.Log)
	n.Ready("firmware domain " + cfg.Domain)
	go n.Watchdog(ctx, nil)
	defer n.Stopping()
	return a.Run(ctx)
}
