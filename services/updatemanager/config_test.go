package updatemanager

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func load(t *testing.T, args []string, env map[string]string) Config {
	t.Helper()
	fs := flag.NewFlagSet("update-manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg, _, err := loadConfig(fs, args, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestConfigDefaults(t *testing.T) {
	cfg := load(t, nil, nil)
	want := Defaults()
	want.Agents = map[string]*AgentConfig{"containers": {ReadTimeout: DefaultReadTimeout}}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.json")
	err := os.WriteFile(file, []byte(`{
  "domain": "edge",
  "thingsEnabled": false,
  "phaseTimeout": "2m",
  "rebootAfter": "bogus",
  "reportFeedbackInterval": "-5s",
  "ownerConsentCommands": ["DOWNLOAD"],
  "agents": {"containers": {"readTimeout": "30s"}, "firmware": {"rebootRequired": true}, "software": {}},
  "connection": {"broker": "tcp://file:1883", "keepAlive": "10s"}
}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cfg := load(t, []string{"-config-file", file, "-domains", "firmware,software,self-update", "-phase-timeout", "3m",
		"-software-reboot-required", "-owner-consent-commands", "update,activate"},
		map[string]string{"PHASE_TIMEOUT": "1m", "MQTT_CONN_BROKER": "tcp://env:1883", "REBOOT_ENABLED": "false"})
	checks := []struct {
		name      string
		got, want any
	}{
		{"domain from file", cfg.Domain, "edge"},
		{"things from file", cfg.ThingsEnabled, false},
		{"flag beats env and file", cfg.PhaseTimeout.D(), 3 * time.Minute},
		{"bad duration keeps default", cfg.RebootAfter.D(), 30 * time.Second},
		{"negative duration keeps default", cfg.ReportFeedbackInterval.D(), time.Minute},
		{"env beats file", cfg.Connection.Broker, "tcp://env:1883"},
		{"env bool", cfg.RebootEnabled, false},
		{"file keepAlive", cfg.Connection.KeepAlive.D(), 10 * time.Second},
		{"consent upper-cased", cfg.OwnerConsentCommands, []string{"UPDATE", "ACTIVATE"}},
		{"domains replace agents", len(cfg.Agents), 3},
		{"firmware from file", *cfg.Agents["firmware"], AgentConfig{RebootRequired: true, ReadTimeout: DefaultReadTimeout}},
		{"software flag", *cfg.Agents["software"], AgentConfig{RebootRequired: true, ReadTimeout: DefaultReadTimeout}},
		{"new agent defaults", *cfg.Agents["self-update"], AgentConfig{ReadTimeout: DefaultReadTimeout}},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}

func TestConfigRejectsBadConsentCommand(t *testing.T) {
	fs := flag.NewFlagSet("update-manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, _, err := loadConfig(fs, []string{"-owner-consent-commands", "cleanup"}, func(string) string { return "" }); err == nil {
		t.Fatal("CLEANUP accepted as a consent command")
	}
}

// TestConfigIgnoresUnrelatedEnv: variables named after flags that have no
// environment form upstream (VERSION, OWNER_CONSENT_COMMANDS) or are ours
// (DATABASE, BOARD_HOOKS) do not change or stop the update manager; the
// documented ones still apply.
func TestConfigIgnoresUnrelatedEnv(t *testing.T) {
	fs := flag.NewFlagSet("update-manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	env := map[string]string{
		"VERSION": "1.2.3", "DATABASE": "/tmp/elsewhere.db", "BOARD_HOOKS": "/nowhere",
		"OWNER_CONSENT_COMMANDS": "download", "CONFIG_FILE": "/does/not/exist.json",
		"DOMAIN": "edge", "CONTAINERS_REBOOT_REQUIRED": "true",
	}
	cfg, printVersion, err := loadConfig(fs, nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("loadConfig with unrelated environment: %v", err)
	}
	if printVersion {
		t.Error("VERSION in the environment asked to print the version")
	}
	def := Defaults()
	if cfg.Database != def.Database || cfg.BoardHooks != def.BoardHooks || len(cfg.OwnerConsentCommands) != 0 {
		t.Errorf("database %q, board hooks %q, consent %v: taken from the environment", cfg.Database, cfg.BoardHooks, cfg.OwnerConsentCommands)
	}
	if cfg.Domain != "edge" || !cfg.Agents["containers"].RebootRequired {
		t.Errorf("documented variables not applied: domain %q, containers %+v", cfg.Domain, *cfg.Agents["containers"])
	}
}
