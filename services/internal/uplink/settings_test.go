package uplink

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"path/filepath"
	"testing"
)

// The shared settings keep upstream's JSON keys and flag names when embedded.
func TestSettingsEmbedKeysAndFlags(t *testing.T) {
	type svc struct {
		LocalSettings
		TPMSettings
		BufferSettings
	}
	var s svc
	err := json.Unmarshal([]byte(`{"localAddress":"tcp://l:1883","localUsername":"u","localPassword":"p",
		"localCACert":"ca","localCert":"c","localKey":"k","tpmDevice":"/dev/tpm0","tpmHandle":7,"tpmKey":"a","tpmKeyPub":"b",
		"bufferFile":"f.db","bufferSize":70000,"bufferOverflow":"reject-new"}`), &s)
	if err != nil {
		t.Fatal(err)
	}
	if s.LocalAddress != "tcp://l:1883" || s.LocalKey != "k" || s.TPMHandle != 7 || s.BufferSize != 70000 || s.BufferOverflow != "reject-new" {
		t.Errorf("decoded %+v", s)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s.LocalSettings.RegisterFlags(fs)
	s.TPMSettings.RegisterFlags(fs)
	s.BufferSettings.RegisterFlags(fs)
	for _, name := range []string{"localAddress", "localUsername", "localPassword", "localCACert", "localCert", "localKey",
		"tpmDevice", "tpmHandle", "tpmKey", "tpmKeyPub", "bufferFile", "bufferSize", "bufferOverflow"} {
		if fs.Lookup(name) == nil {
			t.Errorf("flag -%s missing", name)
		}
	}
}

func TestSettingsValidate(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"local", (&LocalSettings{}).Validate()},
		{"tpm", (&TPMSettings{TPMDevice: "/dev/tpm0"}).Validate()},
		{"small buffer", (&BufferSettings{BufferSize: 1000, BufferOverflow: "drop-oldest"}).Validate()},
		{"bad policy", (&BufferSettings{BufferSize: 1 << 20, BufferOverflow: "drop-newest"}).Validate()},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", tt.name, tt.err)
		}
	}
	b := DefaultBuffer(filepath.Join(t.TempDir(), "b.db"))
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	buf, err := b.Open()
	if err != nil {
		t.Fatal(err)
	}
	buf.Close()
	if tlsCfg, err := (&LocalSettings{LocalAddress: "tcp://127.0.0.1:1883"}).TLS(); tlsCfg != nil || err != nil {
		t.Errorf("plain local address: TLS = %v, %v", tlsCfg, err)
	}
}
