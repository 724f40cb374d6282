package updatemanager

import (
	"encoding/json"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kantofw/kanto/services/internal/config"
	"github.com/kantofw/kanto/services/internal/logging"
)

// Duration is a Go duration string in JSON and on the command line. As
// upstream, an unparsable or negative value keeps the default.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// Set parses a flag value.
func (d *Duration) Set(s string) error {
	if s == "" {
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return nil
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string (numbers are nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return nil
		}
		if n >= 0 {
			*d = Duration(n)
		}
		return nil
	}
	return d.Set(s)
}

// AgentConfig is one domain agent the manager orchestrates.
type AgentConfig struct {
	RebootRequired bool     `json:"rebootRequired"`
	ReadTimeout    Duration `json:"readTimeout"`
}

// Connection holds the local broker settings (upstream key "connection").
type Connection struct {
	Broker             string   `json:"broker"`
	KeepAlive          Duration `json:"keepAlive"`
	DisconnectTimeout  Duration `json:"disconnectTimeout"`
	ConnectTimeout     Duration `json:"connectTimeout"`
	AcknowledgeTimeout Duration `json:"acknowledgeTimeout"`
	SubscribeTimeout   Duration `json:"subscribeTimeout"`
	UnsubscribeTimeout Duration `json:"unsubscribeTimeout"`
	Username           string   `json:"username"`
	Password           string   `json:"password"`
	CACert             string   `json:"caCert"`
	Cert               string   `json:"cert"`
	Key                string   `json:"key"`
}

// Config is upstream's configuration (UM:config), plus Database.
type Config struct {
	// Version is the build's, reported for the manager's own inventory
	// node (not a config key).
	Version                string                  `json:"-"`
	Domain                 string                  `json:"domain"`
	ThingsEnabled          bool                    `json:"thingsEnabled"`
	Agents                 map[string]*AgentConfig `json:"agents"`
	RebootEnabled          bool                    `json:"rebootEnabled"`
	RebootAfter            Duration                `json:"rebootAfter"`
	ReportFeedbackInterval Duration                `json:"reportFeedbackInterval"`
	CurrentStateDelay      Duration                `json:"currentStateDelay"`
	PhaseTimeout           Duration                `json:"phaseTimeout"`
	OwnerConsentCommands   []string                `json:"ownerConsentCommands"`
	OwnerConsentTimeout    Duration                `json:"ownerConsentTimeout"`
	Connection             Connection              `json:"connection"`
	Log                    logging.Config          `json:"log"`
	// Database is where the running campaign is persisted (not upstream:
	// upstream keeps it in memory and loses it on restart).
	Database string `json:"database"`
	// BoardHooks is the board hook directory the reboot goes through (not
	// upstream).
	BoardHooks string `json:"boardHooks"`
}

// DefaultReadTimeout is an agent's default current-state read timeout.
const DefaultReadTimeout = Duration(time.Minute)

// Defaults returns upstream's defaults.
func Defaults() Config {
	return Config{
		Domain:                 "device",
		ThingsEnabled:          true,
		RebootEnabled:          true,
		RebootAfter:            Duration(30 * time.Second),
		ReportFeedbackInterval: Duration(time.Minute),
		CurrentStateDelay:      Duration(30 * time.Second),
		PhaseTimeout:           Duration(10 * time.Minute),
		OwnerConsentTimeout:    Duration(30 * time.Minute),
		Connection: Connection{
			Broker:             "tcp://localhost:1883",
			KeepAlive:          Duration(20 * time.Second),
			DisconnectTimeout:  Duration(250 * time.Millisecond),
			ConnectTimeout:     Duration(30 * time.Second),
			AcknowledgeTimeout: Duration(15 * time.Second),
			SubscribeTimeout:   Duration(15 * time.Second),
			UnsubscribeTimeout: Duration(5 * time.Second),
		},
		Log:        logging.Config{LogLevel: "INFO", LogFileSize: 2, LogFileCount: 5, LogFileMaxAge: 28},
		Database:   "/var/lib/kanto-update-manager/campaign.db",
		BoardHooks: "/etc/kanto/board.d",
	}
}

type boolFlag struct{ p *bool }

func (b boolFlag) String() string {
	if b.p == nil {
		return "false"
	}
	return strconv.FormatBool(*b.p)
}
func (b boolFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*b.p = v
	return nil
}
func (boolFlag) IsBoolFlag() bool { return true }

// upperList is -owner-consent-commands: comma-separated, upper-cased.
type upperList struct{ p *[]string }

func (u upperList) String() string {
	if u.p == nil {
		return ""
	}
	return strings.Join(*u.p, ",")
}
func (u upperList) Set(s string) error {
	*u.p = nil
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*u.p = append(*u.p, strings.ToUpper(v))
		}
	}
	return nil
}

// noEnv are the flags without an environment variable: upstream gives
// none to these (§2.14), and ours (database, board-hooks) take none, so
// that a VERSION or DATABASE set for something else in the service's
// environment cannot change or stop the update manager.
var noEnv = map[string]bool{
	"config-file": true, "version": true, "owner-consent-commands": true,
	"database": true, "board-hooks": true,
}

// loadConfig applies defaults < file < environment < flags, as upstream
// (where env vars are flag defaults). Per-agent flags exist for the domains
// named by -domains (or DOMAINS) plus "containers".
func loadConfig(fs *flag.FlagSet, args []string, getenv func(string) string) (Config, bool, error) {
	cfg := Defaults()
	var configFile, domains string
	var version bool
	fs.StringVar(&configFile, "config-file", "", "JSON config file")
	fs.BoolVar(&version, "version", false, "print the version and exit")
	fs.StringVar(&domains, "domains", "", "comma-separated domain agents (replaces the configured set)")
	fs.StringVar(&cfg.Domain, "domain", cfg.Domain, "the update manager's own domain")
	fs.Var(boolFlag{&cfg.ThingsEnabled}, "things-enabled", "talk to the cloud through the Ditto UpdateManager feature")
	fs.Var(boolFlag{&cfg.RebootEnabled}, "reboot-enabled", "reboot after an update that requires it")
	fs.Var(&cfg.RebootAfter, "reboot-after", "delay before the reboot")
	fs.Var(&cfg.ReportFeedbackInterval, "report-feedback-interval", "throttle of RUNNING feedback (0: never)")
	fs.Var(&cfg.CurrentStateDelay, "current-state-delay", "coalescing delay of unsolicited current state")
	fs.Var(&cfg.PhaseTimeout, "phase-timeout", "timeout of one phase")
	fs.Var(upperList{&cfg.OwnerConsentCommands}, "owner-consent-commands", "commands needing owner consent: download,update,activate")
	fs.Var(&cfg.OwnerConsentTimeout, "owner-consent-timeout", "time to wait for owner consent")
	c := &cfg.Connection
	fs.StringVar(&c.Broker, "mqtt-conn-broker", c.Broker, "local broker")
	fs.Var(&c.KeepAlive, "mqtt-conn-keep-alive", "keep alive")
	fs.Var(&c.DisconnectTimeout, "mqtt-conn-disconnect-timeout", "disconnect timeout")
	fs.Var(&c.ConnectTimeout, "mqtt-conn-connect-timeout", "connect timeout")
	fs.Var(&c.AcknowledgeTimeout, "mqtt-conn-ack-timeout", "acknowledge timeout")
	fs.Var(&c.SubscribeTimeout, "mqtt-conn-sub-timeout", "subscribe timeout")
	fs.Var(&c.UnsubscribeTimeout, "mqtt-conn-unsub-timeout", "unsubscribe timeout")
	fs.StringVar(&c.Username, "mqtt-conn-username", c.Username, "user name")
	fs.StringVar(&c.Password, "mqtt-conn-password", c.Password, "password")
	fs.StringVar(&c.CACert, "mqtt-conn-ca-cert", c.CACert, "CA certificate")
	fs.StringVar(&c.Cert, "mqtt-conn-cert", c.Cert, "client certificate")
	fs.StringVar(&c.Key, "mqtt-conn-key", c.Key, "client key")
	l := &cfg.Log
	fs.StringVar(&l.LogFile, "log-file", l.LogFile, "log file")
	fs.StringVar(&l.LogLevel, "log-level", l.LogLevel, "log level")
	fs.IntVar(&l.LogFileSize, "log-file-size", l.LogFileSize, "log file size in MB")
	fs.IntVar(&l.LogFileCount, "log-file-count", l.LogFileCount, "rotated log files kept")
	fs.IntVar(&l.LogFileMaxAge, "log-file-max-age", l.LogFileMaxAge, "days a rotated log file is kept")
	fs.StringVar(&cfg.Database, "database", cfg.Database, "campaign database (bbolt)")
	fs.StringVar(&cfg.BoardHooks, "board-hooks", cfg.BoardHooks, "board hook executables (reboot)")

	// Per-agent flags bind to a side table; they are merged after the file.
	names := map[string]bool{"containers": true}
	for _, n := range splitDomains(preScan(args, "domains", getenv("DOMAINS"))) {
		names[n] = true
	}
	type agentFlags struct {
		reboot  bool
		timeout Duration
	}
	af := map[string]*agentFlags{}
	for n := range names {
		f := &agentFlags{timeout: -1}
		af[n] = f
		fs.BoolVar(&f.reboot, n+"-reboot-required", false, "domain "+n+" requires a reboot after an update")
		fs.Var(&f.timeout, n+"-read-timeout", "current state read timeout of domain "+n)
	}

	if err := config.Load(fs, args, "config-file", &cfg); err != nil {
		return cfg, false, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	// Environment beats the file, flags beat the environment.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || noEnv[f.Name] {
			return
		}
		env := strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(f.Name, "mqtt-conn-"), "-", "_"))
		if strings.HasPrefix(f.Name, "mqtt-conn-") {
			env = "MQTT_CONN_" + env
		}
		if v := getenv(env); v != "" {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("environment %s=%q: %w", env, v, config.ErrInvalid)
			}
			given[f.Name] = true
		}
	})
	if envErr != nil {
		return cfg, false, envErr
	}
	if cfg.Agents == nil {
		cfg.Agents = map[string]*AgentConfig{"containers": {ReadTimeout: DefaultReadTimeout}}
	}
	if given["domains"] {
		keep := map[string]*AgentConfig{}
		for _, n := range splitDomains(domains) {
			if a := cfg.Agents[n]; a != nil {
				keep[n] = a
			} else {
				keep[n] = &AgentConfig{ReadTimeout: DefaultReadTimeout}
			}
		}
		cfg.Agents = keep
	}
	for n, a := range cfg.Agents {
		if a == nil {
			a = &AgentConfig{ReadTimeout: DefaultReadTimeout}
			cfg.Agents[n] = a
		}
		if a.ReadTimeout == 0 {
			a.ReadTimeout = DefaultReadTimeout
		}
		if f := af[n]; f != nil {
			if given[n+"-reboot-required"] {
				a.RebootRequired = f.reboot
			}
			if given[n+"-read-timeout"] && f.timeout >= 0 {
				a.ReadTimeout = f.timeout
			}
		}
	}
	for _, c := range cfg.OwnerConsentCommands {
		switch strings.ToUpper(c) {
		case "DOWNLOAD", "UPDATE", "ACTIVATE":
		default:
			return cfg, false, fmt.Errorf("ownerConsentCommands: %q is not DOWNLOAD, UPDATE or ACTIVATE: %w", c, config.ErrInvalid)
		}
	}
	if len(cfg.Agents) == 0 {
		return cfg, false, fmt.Errorf("no domain agents configured: %w", config.ErrInvalid)
	}
	return cfg, version, nil
}

// preScan finds -name=value / -name value in args before parsing, so the
// per-agent flags can be declared.
func preScan(args []string, name, def string) string {
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return def
}

func splitDomains(s string) []string {
	var out []string
	for _, d := range strings.Split(s, ",") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}

// agentNames returns the configured domains, sorted.
func (c *Config) agentNames() []string {
	out := make([]string, 0, len(c.Agents))
	for n := range c.Agents {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
