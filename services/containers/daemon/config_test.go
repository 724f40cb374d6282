package daemon

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kantofw/kanto/services/internal/config"
)

func load(t *testing.T, args ...string) (Config, error) {
	t.Helper()
	cfg := Defaults()
	fs := flag.NewFlagSet("cm", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var file string
	cfg.RegisterFlags(fs, &file)
	err := config.Load(fs, args, "cfg-file", &cfg)
	return cfg, err
}

func TestConfigFileAndFlags(t *testing.T) {
	cfg, err := load(t, "--cfg-file", "testdata/config-full.json", "--cm-deflt-ctrs-stop-timeout", "5s", "--net-br-name", "br9")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"file value", cfg.Manager.HomeDir, "/data/cm"},
		{"flag beats file", time.Duration(cfg.Manager.StopTimeout), 5 * time.Second},
		{"flag beats default", cfg.Network.DefaultBridge.Name, "br9"},
		{"file MTU", cfg.Network.DefaultBridge.MTU, 1400},
		{"default kept", cfg.Containers.LeaseID, "kanto-cm.lease"},
		{"subnet", cfg.Network.DefaultBridge.Subnet(), "172.30.0.0/16"},
		{"registry", cfg.Containers.Registries["registry.example.com"].Credentials.UserID, "u"},
		{"insecure", cfg.Containers.InsecureRegistries[0], "localhost:5000"},
		{"things", cfg.Things.Enable, false},
		{"expiry", time.Duration(cfg.Containers.ImageExpiry), 24 * time.Hour},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}

	// The list flags are pflag string slices upstream: a value is split on
	// commas, the flag is repeatable, and the flags replace the file's list
	// while the file's JSON arrays are taken as they are.
	file := []string{"--cfg-file", "testdata/config-full.json"}
	lists := []struct {
		name string
		args []string
		got  func(Config) []string
		want []string
	}{
		{"insecure once with commas", []string{"--ccl-insecure-registries", "a:5000,b:5000"},
			func(c Config) []string { return c.Containers.InsecureRegistries }, []string{"a:5000", "b:5000"}},
		{"insecure twice", []string{"--ccl-insecure-registries", "a:5000", "--ccl-insecure-registries", "b:5000,c"},
			func(c Config) []string { return c.Containers.InsecureRegistries }, []string{"a:5000", "b:5000", "c"}},
		{"insecure flag over file", append(file, "--ccl-insecure-registries", "a,b"),
			func(c Config) []string { return c.Containers.InsecureRegistries }, []string{"a", "b"}},
		{"insecure default", nil,
			func(c Config) []string { return c.Containers.InsecureRegistries }, []string{"localhost"}},
		{"features once with commas", []string{"--things-features", "ContainerFactory,Metrics"},
			func(c Config) []string { return c.Things.Features }, []string{"ContainerFactory", "Metrics"}},
		{"features twice", []string{"--things-features", "SoftwareUpdatable", "--things-features", "Metrics"},
			func(c Config) []string { return c.Things.Features }, []string{"SoftwareUpdatable", "Metrics"}},
		{"features file", file,
			func(c Config) []string { return c.Things.Features }, []string{"ContainerFactory", "Metrics"}},
		{"system containers once with commas", []string{"--ua-system-containers", "x,y"},
			func(c Config) []string { return c.UpdateAgt.SystemContainers }, []string{"x", "y"}},
		{"system containers file array untouched", file,
			func(c Config) []string { return c.UpdateAgt.SystemContainers }, []string{"a,b", "db"}},
		{"system containers flag over file", append(file, "--ua-system-containers", "x", "--ua-system-containers", "y,z"),
			func(c Config) []string { return c.UpdateAgt.SystemContainers }, []string{"x", "y", "z"}},
		{"dec keys", []string{"--ccl-image-dec-keys", "/k1.pem:pw,/k2.pem", "--ccl-image-dec-keys", "/k3.pem"},
			func(c Config) []string { return c.Containers.ImageDecKeys }, []string{"/k1.pem:pw", "/k2.pem", "/k3.pem"}},
		{"dec recipients", []string{"--ccl-image-dec-recipients", "pkcs7:/a.pem,pkcs7:/b.pem"},
			func(c Config) []string { return c.Containers.ImageDecRecipients }, []string{"pkcs7:/a.pem", "pkcs7:/b.pem"}},
	}
	for _, tt := range lists {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := load(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, tt.got(cfg)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestConfigLegacyAndErrors(t *testing.T) {
	cfg, err := load(t, "--cfg-file", "testdata/config-legacy.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(cfg.Manager.StopTimeout); got != 10*time.Second {
		t.Errorf("legacy int timeout: %v", got)
	}
	if _, err := load(t, "--cfg-file", "testdata/missing.json"); !errors.Is(err, config.ErrNotFound) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte("{\n \"manager\": {\"home_dir\": 3}}"), 0o644)
	if _, err := load(t, "--cfg-file", bad); !errors.Is(err, config.ErrInvalid) {
		t.Errorf("wrong type: %v", err)
	}
	cfg = Defaults()
	cfg.Containers.RuncRuntime = "crun"
	if err := cfg.Validate(); err == nil || err.Error() != "unexpected runc runtime = crun: invalid configuration" {
		t.Errorf("Validate: %v", err)
	}
}

func FuzzConfigDecode(f *testing.F) {
	for _, p := range []string{"testdata/config-full.json", "testdata/config-legacy.json"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := Defaults()
		if err := config.Decode("fuzz.json", data, &cfg); err != nil {
			return
		}
		_ = cfg.Validate()
		_ = cfg.Network.DefaultBridge.Subnet()
	})
}

func FuzzDuration(f *testing.F) {
	for _, s := range []string{`"30s"`, `30`, `"45"`, `"1h2m"`, `true`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var d Duration
		if err := d.UnmarshalJSON([]byte(s)); err != nil {
			return
		}
		b, err := d.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var back Duration
		if err := back.UnmarshalJSON(b); err != nil || back != d {
			t.Fatalf("round trip %s -> %s -> %v (%v)", s, b, back, err)
		}
	})
}
