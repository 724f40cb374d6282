package uplink

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/tpmkey"
	"github.com/kantofw/kanto/services/internal/tpmkey/tpmkeytest"
)

func TestTPMSettingsValidate(t *testing.T) {
	full := TPMSettings{TPMDevice: "/dev/tpmrm0", TPMHandle: 0x81000001, TPMKey: "k.priv", TPMKeyPub: "k.pub"}
	if err := full.Validate(); err != nil {
		t.Errorf("complete settings: %v", err)
	}
	if err := (&TPMSettings{TPMHandle: 7}).Validate(); err != nil {
		t.Errorf("no device: %v", err)
	}
	for name, edit := range map[string]func(*TPMSettings){
		"no private blob": func(s *TPMSettings) { s.TPMKey = "" },
		"no public blob":  func(s *TPMSettings) { s.TPMKeyPub = "" },
		"no handle":       func(s *TPMSettings) { s.TPMHandle = 0 },
		"64-bit handle":   func(s *TPMSettings) { s.TPMHandle = 1 << 32 },
	} {
		s := full
		edit(&s)
		if err := s.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}

// tpmWorld is a swtpm with an RSA and an ECC key, certificates for both
// from one CA, and a Mosquitto that requires client certificates of it.
type tpmWorld struct {
	tpm    *tpmkeytest.TPM
	ca     *tpmkeytest.CA
	broker *mosquittotest.Broker
	keys   map[string]TPMSettings // by algorithm
	certs  map[string]string      // client certificate files
}

func newTPMWorld(t *testing.T) *tpmWorld {
	w := &tpmWorld{tpm: tpmkeytest.Start(t), ca: tpmkeytest.NewCA(t), keys: map[string]TPMSettings{}, certs: map[string]string{}}
	for _, alg := range []string{"rsa2048", "ecc256"} {
		priv, pub := w.tpm.CreateKey(t, alg, alg)
		s := TPMSettings{TPMDevice: w.tpm.Socket, TPMHandle: uint64(tpmkeytest.Parent), TPMKey: priv, TPMKeyPub: pub}
		// One connection to swtpm at a time: open, issue, close.
		k, err := tpmkey.Open(tpmkey.Options{Device: s.TPMDevice, Parent: tpmkeytest.Parent, Private: priv, Public: pub})
		if err != nil {
			t.Fatal(err)
		}
		w.certs[alg], _ = w.ca.Client(t, "ns:"+alg, k.Public())
		k.Close()
		w.keys[alg] = s
	}
	certFile, keyFile, _ := w.ca.Server(t)
	w.broker = mosquittotest.Start(t, mosquittotest.Options{
		TLS: &mosquittotest.TLS{CAFile: w.ca.File, CertFile: certFile, KeyFile: keyFile, RequireCert: true},
	})
	return w
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// connect connects to the broker with cfg and returns the error.
func (w *tpmWorld) connect(t *testing.T, cfg *tls.Config) error {
	c := mqtt.New(mqtt.Options{URL: "tls://" + w.broker.Addr(), ClientID: "tpm-" + t.Name(), TLS: cfg, ConnectTimeout: time.Minute})
	defer c.Close()
	return c.Connect(ctxT(t))
}

// A real Mosquitto (OpenSSL) that requires client certificates accepts the
// connector's TLS with the private key in the TPM: RSA and ECDSA, TLS 1.2
// and 1.3.
func TestHubTLSWithTPMKey(t *testing.T) {
	w := newTPMWorld(t)
	for _, alg := range []string{"rsa2048", "ecc256"} {
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			t.Run(alg+"/"+tls.VersionName(version), func(t *testing.T) {
				s := w.keys[alg]
				key, err := s.Open(w.certs[alg], nil)
				if err != nil {
					t.Fatal(err)
				}
				defer key.Close()
				cfg, leaf, err := HubTLS(w.ca.File, w.certs[alg], "", key, nil)
				if err != nil {
					t.Fatal(err)
				}
				if leaf.Subject.CommonName != "ns:"+alg {
					t.Errorf("leaf %s", leaf.Subject)
				}
				cfg.MaxVersion = version
				if err := w.connect(t, cfg); err != nil {
					t.Fatalf("connect with the TPM key: %v", err)
				}
			})
		}
	}
	t.Run("no client certificate", func(t *testing.T) {
		// The broker does require one: the test above proves the TPM key.
		cfg, _, err := HubTLS(w.ca.File, "", "", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.connect(t, cfg); err == nil {
			t.Fatal("connected without a client certificate")
		}
	})
}

// What the operator gets wrong is reported when the key is opened, with a
// category to tell the cases apart.
func TestTPMOpenErrors(t *testing.T) {
	w := newTPMWorld(t)
	rsa := w.keys["rsa2048"]
	bad := filepath.Join(t.TempDir(), "bad.priv")
	if err := os.WriteFile(bad, []byte{0, 4, 1, 2, 3}, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*TPMSettings)
		cert string
		want error
	}{
		{"no such device", func(s *TPMSettings) { s.TPMDevice = "/dev/no-tpm" }, w.certs["rsa2048"], tpmkey.ErrDevice},
		{"wrong handle", func(s *TPMSettings) { s.TPMHandle = 0x81000009 }, w.certs["rsa2048"], tpmkey.ErrParent},
		{"corrupted blob", func(s *TPMSettings) { s.TPMKey = bad }, w.certs["rsa2048"], tpmkey.ErrBlob},
		{"certificate of another key", func(*TPMSettings) {}, w.certs["ecc256"], tpmkey.ErrMismatch},
		{"no certificate", func(*TPMSettings) {}, "", ErrConfig},
		{"incomplete settings", func(s *TPMSettings) { s.TPMKeyPub = "" }, w.certs["rsa2048"], ErrConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := rsa
			tc.edit(&s)
			key, err := s.Open(tc.cert, nil)
			if err == nil {
				key.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("%v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
	// A certificate replaced after start-up is checked again when the TLS
	// config is built.
	key, err := rsa.Open(w.certs["rsa2048"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	if _, _, err := HubTLS(w.ca.File, w.certs["ecc256"], "", key, nil); !errors.Is(err, tpmkey.ErrMismatch) || !errors.Is(err, ErrTLS) {
		t.Errorf("HubTLS with another key's certificate: %v", err)
	}
	if key, err := (&TPMSettings{}).Open("x.crt", nil); key != nil || err != nil {
		t.Errorf("no tpmDevice: %v, %v", key, err)
	}
}
