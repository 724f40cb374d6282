package twins

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kantofw/kanto/services/internal/cli"
)

// Precedence: defaults < config file < provisioning file < explicit flags;
// auto-provisioning follows the provisioning file's authorities.
func TestLoadSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	prov := filepath.Join(dir, "provisioning.json")
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(`{"deviceId":"ns:file","tenantId":"TF","provisioningFile":"`+prov+`","thingsDb":"/x/things.db","unknownKey":1}`), 0o644)
	os.WriteFile(prov, []byte(`{"hub":{"credentials":{"deviceId":"ns:prov","tenantId":"TP","authId":"a",
		"adapters":[{"type":"http","uri":"https://x"},{"type":"mqtt","uri":"mqtts://hub.example","port":8883}],
		"secrets":[{"passwordBase64":"c2VjcmV0"}]},"device":{"authorities":["auto-provisioning-enabled"]}}}`), 0o644)
	env := &cli.Env{Name: "local-digital-twins", Stderr: &bytes.Buffer{}, Stdout: &bytes.Buffer{}}
	s, err := LoadSettings(env, []string{"-configFile", cfg, "-tenantId", "TFLAG"})
	if err != nil {
		t.Fatal(err)
	}
	if s.DeviceID != "ns:prov" || s.TenantID != "TFLAG" || s.Address != "mqtts://hub.example:8883" || s.Password != "secret" ||
		s.AuthID != "a" || !s.AutoProvisioning || s.ThingsDB != "/x/things.db" {
		t.Errorf("settings %+v", s)
	}
	os.WriteFile(prov, []byte(`{"hub":{"device":{"authorities":[]}}}`), 0o644)
	s, _ = LoadSettings(env, []string{"-configFile", cfg})
	if s.AutoProvisioning || s.DeviceID != "ns:file" {
		t.Errorf("without the authority: %+v", s)
	}
	os.WriteFile(prov, []byte(`{not json`), 0o644)
	if _, err := LoadSettings(env, []string{"-configFile", cfg}); !errors.Is(err, ErrProvisioning) {
		t.Errorf("bad provisioning file: %v", err)
	}
	if _, err := LoadSettings(env, []string{"-bogus"}); cli.ExitCode(err) != 2 {
		t.Errorf("bad flag: exit %d (%v)", cli.ExitCode(err), err)
	}
}

func TestValidate(t *testing.T) {
	ok := Defaults()
	ok.Address, ok.DeviceID, ok.TenantID = "tcp://h:1883", "ns:dev", "T"
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	// static: ValidateStatic fails too (the provisioning file cannot fix it).
	for name, tc := range map[string]struct {
		mod    func(*Settings)
		static bool
	}{
		"no device id":   {func(s *Settings) { s.DeviceID = "" }, false},
		"bad device id":  {func(s *Settings) { s.DeviceID = "nocolon" }, false},
		"no tenant":      {func(s *Settings) { s.TenantID = "" }, false},
		"no address":     {func(s *Settings) { s.Address = "" }, false},
		"tls without ca": {func(s *Settings) { s.Address, s.CACert = "mqtts://h:8883", "/nonexistent" }, false},
		"no local":       {func(s *Settings) { s.LocalAddress = "" }, true},
		"no things db":   {func(s *Settings) { s.ThingsDB = "" }, true},
		"bad log":        {func(s *Settings) { s.LogFileCount = 0 }, true},
		"tiny buffer":    {func(s *Settings) { s.BufferSize = 10 }, true},
		"bad overflow":   {func(s *Settings) { s.BufferOverflow = "x" }, true},
		"tpm":            {func(s *Settings) { s.TPMDevice = "/dev/tpm0" }, true},
	} {
		s := ok
		tc.mod(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
		if err := s.ValidateStatic(); (err != nil) != tc.static {
			t.Errorf("%s: ValidateStatic: %v, want an error: %v", name, err, tc.static)
		}
	}
}

func FuzzProvisioning(f *testing.F) {
	for _, s := range []string{`{"hub":{"credentials":{"deviceId":"ns:p","adapters":[{"type":"mqtt","uri":"mqtts://h","port":"8883"}],"secrets":[{"password":"x"}]}}}`,
		`{"hub":{"credentials":{"secrets":[{"passwordBase64":"!!"}]}}}`, `{}`, `[]`, `{"hub":{"device":{"authorities":["auto-provisioning-enabled"]}}}`} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "p.json")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s := Defaults()
		_, _ = applyProvisioning(p, &s)
	})
}
