// Package updatemanager is `kanto update-manager`: it receives a desired
// state from the cloud (the Ditto UpdateManager feature, or plain
// <domain>update/... topics with thingsEnabled=false), splits it per domain,
// drives the domain agents through DOWNLOAD, UPDATE, ACTIVATE and CLEANUP
// (ROLLBACK after a denied consent) with phase barriers and timeouts, one
// activity at a time, aggregates feedback and current state, and reboots
// through a board hook when a domain requires it.
//
// Unlike upstream, the running campaign is persisted (see campaign.go): a
// manager killed mid-campaign resumes it at start, reports its status again
// and re-sends what it was waiting for.
package updatemanager

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/kantofw/kanto/board"
	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/config"
	"github.com/kantofw/kanto/services/internal/lifecycle"
	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/store"
	"github.com/kantofw/kanto/services/internal/updateapi"
)

// ErrTLS marks TLS settings that cannot be used.
var ErrTLS = errors.New("TLS configuration")

// Main is `kanto update-manager`.
func Main(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, env.Name)
	getenv := env.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg, version, err := loadConfig(fs, args, getenv)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return err
	case errors.Is(err, config.ErrNotFound):
		fmt.Fprintf(env.Stderr, "warning: %v, using defaults and flags\n", err)
	case err != nil:
		return fmt.Errorf("%w: %w", err, cli.ErrUsage)
	}
	cfg.Version = cmp.Or(env.Version, "dev")
	if version {
		fmt.Fprintln(env.Stdout, cfg.Version)
		return nil
	}
	log, closer, err := logging.New(cfg.Log, "update-manager", env.Stderr)
	if err != nil {
		return fmt.Errorf("%w: %w", err, cli.ErrUsage)
	}
	defer closer.Close()
	// The board package's hooks: the reboot hook executable if the board
	// has one, else systemctl reboot, else reboot(2). Upstream writes to
	// /proc/sysrq-trigger instead.
	s, err := New(cfg, ServiceDeps{Log: log, Reboot: &board.Hooks{Dir: cfg.BoardHooks, Log: log}})
	if err != nil {
		return err
	}
	n := lifecycle.NewNotifier(log)
	go n.Watchdog(ctx, nil) // owned by Main; exits with ctx
	s.OnReady = func() { n.Ready("managing " + fmt.Sprint(cfg.agentNames())) }
	err = s.Run(ctx)
	n.Stopping()
	return err
}

// ServiceDeps are what main builds once.
type ServiceDeps struct {
	Log    *slog.Logger
	Reboot Rebooter
	Now    func() time.Time
}

// Service is a running update manager: its broker connection, database
// and orchestrator.
type Service struct {
	cfg     Config
	deps    ServiceDeps
	OnReady func()
}

// New checks cfg and returns a service; Run starts it.
func New(cfg Config, d ServiceDeps) (*Service, error) {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Service{cfg: cfg, deps: d}, nil
}

// Run serves until ctx ends; cancellation returns nil.
func (s *Service) Run(ctx context.Context) error {
	cfg := s.cfg
	log := s.deps.Log
	var db *store.DB
	if cfg.Database != "" {
		var err error
		db, err = store.Open(cfg.Database, "update-manager", migrations)
		if err != nil {
			return err
		}
		defer db.Close()
	}
	tlsCfg, err := tlsConfig(cfg.Connection)
	if err != nil {
		return err
	}
	var connected func()
	client := mqtt.New(mqtt.Options{
		URL: cfg.Connection.Broker, ClientID: randomID(), Username: cfg.Connection.Username, Password: cfg.Connection.Password,
		TLS: tlsCfg, CleanSession: true, KeepAlive: cfg.Connection.KeepAlive.D(), ConnectTimeout: cfg.Connection.ConnectTimeout.D(),
		AutoReconnect: true, Log: log, OnConnect: func() {
			if connected != nil {
				connected()
			}
		},
	})
	defer client.Close()
	agents := &mqttAgents{c: client, now: s.deps.Now, ack: cfg.Connection.AcknowledgeTimeout.D()}
	var cloud Cloud
	var things *thingsCloud
	if cfg.ThingsEnabled {
		things = newThingsCloud(client, cfg, s.deps.Now, log)
		cloud = things
	} else {
		cloud = &mqttCloud{c: client, prefix: updateapi.TopicPrefix(cfg.Domain), now: s.deps.Now, ack: cfg.Connection.AcknowledgeTimeout.D()}
	}
	m := NewManager(cfg, Deps{Cloud: cloud, Agents: agents, Reboot: s.deps.Reboot, DB: db, Log: log, Now: s.deps.Now})
	if err := subscribeAgents(ctx, client, m, cfg.agentNames()); err != nil {
		return err
	}
	if things != nil {
		if err := things.subscribe(ctx, m); err != nil {
			return err
		}
		connected = func() { things.onConnect() }
	} else if err := subscribeCloud(ctx, client, m, updateapi.TopicPrefix(cfg.Domain)); err != nil {
		return err
	}
	if err := connectLoop(ctx, client, log); err != nil {
		return nil
	}
	if things != nil {
		things.onConnect()
	}
	if s.OnReady != nil {
		s.OnReady()
	}
	log.Info("update manager started", "domain", cfg.Domain, "agents", cfg.agentNames(), "things", cfg.ThingsEnabled)
	return m.Run(ctx)
}

func connectLoop(ctx context.Context, c *mqtt.Client, log *slog.Logger) error {
	delay := 100 * time.Millisecond
	for {
		err := c.Connect(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("broker connect failed, retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tlsConfig builds the broker TLS settings. As upstream, a secure broker
// URL requires caCert.
func tlsConfig(c Connection) (*tls.Config, error) {
	if !mqtt.IsSecure(c.Broker) {
		return nil, nil
	}
	if c.CACert == "" {
		return nil, fmt.Errorf("connection is secure, but no TLS configuration is provided: %w", ErrTLS)
	}
	pem, err := os.ReadFile(c.CACert)
	if err != nil {
		return nil, fmt.Errorf("caCert: %w: %w", err, ErrTLS)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("caCert %s holds no certificate: %w", c.CACert, ErrTLS)
	}
	t := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	if c.Cert != "" || c.Key != "" {
		kp, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w: %w", err, ErrTLS)
		}
		t.Certificates = []tls.Certificate{kp}
	}
	return t, nil
}
