// Package softwareupdate is `kanto software-update`: the script-based
// hawkBit SoftwareUpdatable feature (install, download, remove, cancel) and
// the "software" domain agent of the update manager, sharing one storage:
//
//	<storageLocation>/
//	  download/<n>/updatable.json   a queued or running operation
//	  download/<n>/<i>/             module i: artifacts, _temporary-<file> while
//	                                downloading, internal-status (STARTED,
//	                                DOWNLOADING, DOWNLOADED, INSTALLING or
//	                                finished:<name>:<version>)
//	  modules/<m>/                  modules kept by a download operation
//	  installed-deps/               *.prs files of installed dependencies
//	  agent/                        the update agent's work folders
//	  agent.db                      the update agent's operation (bbolt)
//
// An operation folder is removed when the operation ends; at start every
// folder still holding updatable.json is resumed from its modules'
// internal-status, so a restart during a download resumes it with a Range
// request and a restart during an install runs the script again.
package softwareupdate

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/config"
	"github.com/kantofw/kanto/services/internal/lifecycle"
	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/store"
	"github.com/kantofw/kanto/services/internal/updateagent"
)

// Duration is a Go duration string in JSON and flags.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// Set parses a duration flag.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("invalid duration %q", s)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	return d.Set(s)
}

// MarshalJSON writes a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// Config holds upstream's keys (SU:internal/feature.go, flags.go) plus
// Domain, the Update Agent API domain ("" turns that face off).
type Config struct {
	FeatureID             string   `json:"featureId"`
	ModuleType            string   `json:"moduleType"`
	ArtifactType          string   `json:"artifactType"`
	Install               []string `json:"install"`
	StorageLocation       string   `json:"storageLocation"`
	InstallDirs           []string `json:"installDirs"`
	Mode                  string   `json:"mode"`
	DownloadRetryCount    int      `json:"downloadRetryCount"`
	DownloadRetryInterval Duration `json:"downloadRetryInterval"`
	ServerCert            string   `json:"serverCert"`
	Broker                string   `json:"broker"`
	Username              string   `json:"username"`
	Password              string   `json:"password"`
	CACert                string   `json:"caCert"`
	Cert                  string   `json:"cert"`
	Key                   string   `json:"key"`
	Domain                string   `json:"domain"`
	logging.Config
}

// Defaults returns upstream's defaults.
func Defaults() Config {
	return Config{
		FeatureID: "SoftwareUpdatable", ModuleType: "software", ArtifactType: "archive", StorageLocation: ".",
		Mode: ModeStrict, DownloadRetryInterval: Duration(5 * time.Second), Broker: "tcp://localhost:1883",
		Domain: "software", Config: logging.Defaults("log/software-update.log"),
	}
}

// Validate applies upstream's checks.
func (c *Config) Validate() error {
	switch {
	case c.ArtifactType != "archive" && c.ArtifactType != "plain":
		return fmt.Errorf("artifactType must be archive or plain, not %q: %w", c.ArtifactType, config.ErrInvalid)
	case !strings.EqualFold(c.Mode, ModeStrict) && !strings.EqualFold(c.Mode, ModeScoped) && !strings.EqualFold(c.Mode, ModeLax):
		return fmt.Errorf("mode must be strict, scoped or lax, not %q: %w", c.Mode, config.ErrInvalid)
	case c.DownloadRetryCount < 0:
		return fmt.Errorf("downloadRetryCount must be >= 0: %w", config.ErrInvalid)
	case (c.Cert == "") != (c.Key == ""):
		return fmt.Errorf("cert and key must be given together: %w", config.ErrInvalid)
	}
	return c.Config.Validate()
}

// RegisterFlags binds upstream's flag names (the JSON keys).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.FeatureID, "featureId", c.FeatureID, "feature ID")
	fs.StringVar(&c.ModuleType, "moduleType", c.ModuleType, "softwareModuleType")
	fs.StringVar(&c.ArtifactType, "artifactType", c.ArtifactType, "archive or plain")
	fs.Var(&config.StringList{Values: &c.Install}, "install", "install command, then its arguments (repeatable)")
	fs.StringVar(&c.StorageLocation, "storageLocation", c.StorageLocation, "storage folder")
	fs.Var(&config.StringList{Values: &c.InstallDirs, Split: true}, "installDirs", "space-separated folders of local artifacts")
	fs.StringVar(&c.Mode, "mode", c.Mode, "local artifact access: strict, scoped or lax")
	fs.IntVar(&c.DownloadRetryCount, "downloadRetryCount", c.DownloadRetryCount, "download retries")
	fs.Var(&c.DownloadRetryInterval, "downloadRetryInterval", "time between download retries")
	fs.StringVar(&c.ServerCert, "serverCert", c.ServerCert, "PEM CA of HTTPS artifact servers")
	fs.StringVar(&c.Broker, "broker", c.Broker, "local MQTT broker")
	fs.StringVar(&c.Username, "username", c.Username, "MQTT user")
	fs.StringVar(&c.Password, "password", c.Password, "MQTT password")
	fs.StringVar(&c.CACert, "caCert", c.CACert, "MQTT CA certificate")
	fs.StringVar(&c.Cert, "cert", c.Cert, "MQTT client certificate")
	fs.StringVar(&c.Key, "key", c.Key, "MQTT client key")
	fs.StringVar(&c.Domain, "domain", c.Domain, "Update Agent API domain (empty: off)")
	c.Config.RegisterFlags(fs)
}

// Main is `kanto software-update`.
func Main(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, env.Name)
	cfg := Defaults()
	var file string
	fs.StringVar(&file, "configFile", "", "JSON config file")
	cfg.RegisterFlags(fs)
	err := config.Load(fs, args, "configFile", &cfg)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return err
	case errors.Is(err, config.ErrNotFound):
		fmt.Fprintf(env.Stderr, "warning: %v, using defaults and flags\n", err)
	case err != nil:
		return fmt.Errorf("%w: %w", err, cli.ErrUsage)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %w", err, cli.ErrUsage)
	}
	log, closer, err := logging.New(cfg.Config, "software-update", env.Stderr)
	if err != nil {
		return fmt.Errorf("%w: %w", err, cli.ErrUsage)
	}
	defer closer.Close()
	s, err := New(cfg, log)
	if err != nil {
		return err
	}
	n := lifecycle.NewNotifier(log)
	go n.Watchdog(ctx, nil) // owned by Main; exits with ctx
	s.OnReady = func() { n.Ready("feature " + cfg.FeatureID) }
	err = s.Run(ctx)
	n.Stopping()
	return err
}

// Service is a running software-update.
type Service struct {
	cfg     Config
	log     *slog.Logger
	OnReady func()
}

// New returns the service.
func New(cfg Config, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, log: log}, nil
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Service) mqttOptions() (mqtt.Options, error) {
	o := mqtt.Options{URL: s.cfg.Broker, ClientID: randomID(), Username: s.cfg.Username, Password: s.cfg.Password,
		CleanSession: true, AutoReconnect: true, Log: s.log}
	if mqtt.IsSecure(s.cfg.Broker) || s.cfg.Cert != "" {
		t := &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
		if s.cfg.CACert != "" {
			pem, err := os.ReadFile(s.cfg.CACert)
			if err != nil {
				return o, err
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			t.RootCAs = pool
		}
		if s.cfg.Cert != "" {
			kp, err := tls.LoadX509KeyPair(s.cfg.Cert, s.cfg.Key)
			if err != nil {
				return o, err
			}
			t.Certificates = []tls.Certificate{kp}
		}
		o.TLS = t
	}
	return o, nil
}

// Run serves until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	cfg := s.cfg
	if err := os.MkdirAll(cfg.StorageLocation, 0o755); err != nil {
		return err
	}
	dl, err := NewDownloader(cfg.DownloadRetryCount, time.Duration(cfg.DownloadRetryInterval), cfg.ServerCert, s.log)
	if err != nil {
		return err
	}
	runner := Runner{Command: cfg.Install}
	eng := &Engine{Storage: cfg.StorageLocation, Downloader: dl, Runner: runner, ArtifactType: cfg.ArtifactType,
		InstallDirs: cfg.InstallDirs, Mode: cfg.Mode, Log: s.log}
	mo, err := s.mqttOptions()
	if err != nil {
		return err
	}
	f := &feature{id: cfg.FeatureID, moduleType: cfg.ModuleType, engine: eng, log: s.log, ready: make(chan struct{})}
	mo.OnConnect = f.onConnect
	client := mqtt.New(mo)
	defer client.Close()
	f.c = client
	eng.Report = f.report
	eng.DepsChanged = f.depsChanged
	if err := f.subscribe(ctx); err != nil {
		return err
	}
	var agentDone chan error
	if cfg.Domain != "" {
		db, err := store.Open(filepath.Join(cfg.StorageLocation, "agent.db"), "software-update-agent", updateagent.Migrations)
		if err != nil {
			return err
		}
		defer db.Close()
		ao, err := s.mqttOptions()
		if err != nil {
			return err
		}
		dom := &Domain{Name: cfg.Domain, Storage: cfg.StorageLocation, Downloader: dl, Runner: runner, ArtifactType: cfg.ArtifactType, Log: s.log}
		agent := updateagent.New(updateagent.Options{Domain: cfg.Domain, MQTT: ao, DB: db, Log: s.log}, dom)
		agentDone = make(chan error, 1)
		go func() { agentDone <- agent.Run(ctx) }() // owned by Run; ends with ctx
	}
	for {
		if err := client.Connect(ctx); err == nil {
			break
		} else if ctx.Err() != nil {
			return waitAgent(agentDone)
		} else {
			s.log.Warn("broker connect failed, retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return waitAgent(agentDone)
		case <-time.After(time.Second):
		}
	}
	if s.OnReady != nil {
		s.OnReady()
	}
	// Operations (also resumed ones) run once the thing is known, so their
	// statuses have somewhere to go.
	select {
	case <-f.ready:
	case <-ctx.Done():
		return waitAgent(agentDone)
	}
	err = eng.Run(ctx)
	if aerr := waitAgent(agentDone); err == nil {
		err = aerr
	}
	return err
}

func waitAgent(ch chan error) error {
	if ch == nil {
		return nil
	}
	return <-ch
}
