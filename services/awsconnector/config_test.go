package awsconnector

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/cloudpeer/awsiot"
)

func TestSettings(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.json")
	os.WriteFile(cfg, []byte(`{"address":"tls://x:8883","cert":"c","key":"k","topicFilter":"^a","payloadFilters":["b"],"deviceId":"ignored:x"}`), 0o644)
	env := &cli.Env{Name: "aws-connector", Stderr: &bytes.Buffer{}, Stdout: &bytes.Buffer{}}
	s, _, err := LoadSettings(env, []string{"-configFile", cfg, "-payloadFilters", "c", "-payloadFilters", "d"})
	if err != nil {
		t.Fatal(err)
	}
	if s.TenantID != "default-tenant-id" || s.CACert != "aws.crt" || s.LogFile != "logs/aws-connector.log" || s.TopicFilter != "^a" || len(s.PayloadFilters) != 2 {
		t.Errorf("settings %+v", s)
	}
	s.CACert = ""
	s.PayloadFilters = []string{"("}
	if err := s.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("bad payload filter: %v", err)
	}
	s.PayloadFilters, s.TopicFilter = nil, "(["
	if err := s.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("bad topic filter: %v", err)
	}
	s.TopicFilter, s.Address = "", ""
	if err := s.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("no address: %v", err)
	}
	s.Address, s.ClaimCert = "tls://x:8883", "claim.crt"
	if err := s.Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("half a claim configuration: %v", err)
	}
	if _, _, err := LoadSettings(env, []string{"-bogus"}); cli.ExitCode(err) != 2 {
		t.Errorf("bad flag: exit %d", cli.ExitCode(err))
	}
}

// The device id is the certificate's CN, which must be a namespaced id.
func TestDeviceIDFromCertificate(t *testing.T) {
	ca, err := awsiot.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for cn, ok := range map[string]bool{"test:device": true, "ns:gw:child": true, "AWS IoT Certificate": false, "nocolon": false, "1ns:x": false} {
		cert, _, err := ca.WriteFiles(dir, "d", cn, false)
		if err != nil {
			t.Fatal(err)
		}
		id, err := deviceID(cert)
		if ok != (err == nil) || ok && id != cn {
			t.Errorf("CN %q: id %q err %v", cn, id, err)
		}
		if !ok && !errors.Is(err, ErrIdentity) {
			t.Errorf("CN %q: err %v is not ErrIdentity", cn, err)
		}
	}
	if _, err := deviceID(filepath.Join(dir, "missing.crt")); !errors.Is(err, ErrIdentity) {
		t.Errorf("missing file: %v", err)
	}
}
