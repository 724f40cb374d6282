package fileupload

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/config"
)

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.json")
	must(t, os.WriteFile(file, []byte(`{
  "files": "/var/tmp/file-upload/*.*", "mode": "scoped", "period": "1h", "delete": true,
  "checksum": true, "singleUpload": true, "stopTimeout": "5s", "active": true,
  "activeFrom": "2024-01-01T00:00:00Z", "logLevel": "DEBUG", "uploadRate": 1000,
  "broker": "tcp://broker:1883", "unknownKey": 1
}`), 0o644))
	cfg := Defaults()
	fs := cli.NewFlagSet(&cli.Env{Stderr: &bytes.Buffer{}}, "file-upload")
	cfg.RegisterFlags(fs)
	must(t, config.Load(fs, []string{"-configFile", file, "-mode", "lax", "-period", "2h"}, "configFile", &cfg))
	want := Defaults()
	want.Files, want.Mode, want.Period, want.Delete, want.Checksum = "/var/tmp/file-upload/*.*", "lax", Duration(2*time.Hour), true, true
	want.SingleUpload, want.StopTimeout, want.Active, want.ActiveFrom = true, Duration(5*time.Second), true, "2024-01-01T00:00:00Z"
	want.LogLevel, want.UploadRate, want.Broker, want.ConfigFile = "DEBUG", 1000, "tcp://broker:1883", file
	if cfg != want {
		t.Errorf("got %+v\nwant %+v", cfg, want)
	}
	from, _, err := cfg.Validate()
	if err != nil || !from.Equal(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Validate: %v %v", from, err)
	}
}

func TestConfigInvalid(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"bad mode":           func(c *Config) { c.Mode = "loose" },
		"no files in strict": func(c *Config) { c.Files = "" },
		"zero period":        func(c *Config) { c.Period = 0 },
		"cert without key":   func(c *Config) { c.Cert = "c.pem" },
		"bad activeFrom":     func(c *Config) { c.ActiveFrom = "tomorrow" },
		"till before from":   func(c *Config) { c.ActiveFrom, c.ActiveTill = "2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z" },
		"bad glob":           func(c *Config) { c.Files = "/x/[" },
		"bad log file count": func(c *Config) { c.LogFileCount = 0 },
	} {
		cfg := Defaults()
		cfg.Files = "/tmp/*"
		mod(&cfg)
		if _, _, err := cfg.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMainUsage(t *testing.T) {
	var stderr bytes.Buffer
	env := &cli.Env{Name: "file-upload", Stderr: &stderr, Stdout: &stderr}
	for _, args := range [][]string{{"-nope"}, {"-mode", "loose", "-files", "/x/*"}, {"-period", "soon"}} {
		if err := Main(context.Background(), env, args); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	var d Duration
	for in, want := range map[string]time.Duration{`"10h"`: 10 * time.Hour, `"1m30s"`: 90 * time.Second, `1000`: 1000} {
		if err := d.UnmarshalJSON([]byte(in)); err != nil || time.Duration(d) != want {
			t.Errorf("%s: %v %v", in, time.Duration(d), err)
		}
	}
	if err := d.UnmarshalJSON([]byte(`"ten"`)); err == nil {
		t.Error("bad duration accepted")
	}
}
