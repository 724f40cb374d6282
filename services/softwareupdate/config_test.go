package softwareupdate

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/services/internal/config"
)

func TestConfigFileThenFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, []byte(`{"featureId":"Scripts","install":["/opt/run.sh","-v"],"installDirs":["/a","/b"],
"mode":"scoped","downloadRetryCount":3,"downloadRetryInterval":"2s","storageLocation":"/var/lib/su","logLevel":"DEBUG"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	fs := flag.NewFlagSet("software-update", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cf string
	fs.StringVar(&cf, "configFile", "", "")
	cfg.RegisterFlags(fs)
	if err := config.Load(fs, []string{"-configFile", file, "-install", "/bin/x", "-install", "arg", "-downloadRetryCount", "5"}, "configFile", &cfg); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"featureId", cfg.FeatureID, "Scripts"},
		{"flags replace the install list", cfg.Install, []string{"/bin/x", "arg"}},
		{"installDirs", cfg.InstallDirs, []string{"/a", "/b"}},
		{"mode", cfg.Mode, "scoped"},
		{"flag beats file", cfg.DownloadRetryCount, 5},
		{"interval", time.Duration(cfg.DownloadRetryInterval), 2 * time.Second},
		{"storage", cfg.StorageLocation, "/var/lib/su"},
		{"moduleType default", cfg.ModuleType, "software"},
		{"logLevel", cfg.LogLevel, "DEBUG"},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.ArtifactType = "zip" },
		func(c *Config) { c.Mode = "open" },
		func(c *Config) { c.DownloadRetryCount = -1 },
		func(c *Config) { c.Cert = "c.pem" },
	} {
		c := Defaults()
		bad(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}
