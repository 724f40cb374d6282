package connector_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"
	"time"

	"github.com/kantofw/kanto/services/internal/tpmkey"
	"github.com/kantofw/kanto/services/internal/tpmkey/tpmkeytest"
)

// tpmDevice is a device whose client key is in a (software) TPM, made as a
// device maker would: tpm2-tools creates an RSA key under the persistent
// storage key, the TPM signs the certificate request, the CA issues it.
type tpmDevice struct {
	tpm           *tpmkeytest.TPM
	priv, pub     string
	pki           *pki
	otherCertFile string // a certificate for another key, of the same CA
}

func newTPMDevice(t *testing.T, cn string) *tpmDevice {
	d := &tpmDevice{tpm: tpmkeytest.Start(t)}
	d.priv, d.pub = d.tpm.CreateKey(t, "device", "rsa2048")
	ca := tpmkeytest.NewCA(t)
	_, _, server := ca.Server(t)
	key, err := tpmkey.Open(tpmkey.Options{Device: d.tpm.Socket, Parent: tpmkeytest.Parent, Private: d.priv, Public: d.pub})
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	key.Close()
	if err != nil {
		t.Fatal(err)
	}
	certFile, leaf := ca.ClientFromCSR(t, csr)
	d.pki = &pki{dir: t.TempDir(), caFile: ca.File, certFile: certFile, serverCert: server, pool: ca.Pool, clientSubject: leaf.Subject.String()}
	// Some other device's key (a software one), same CA.
	other := newPKI(t, cn)
	d.otherCertFile = other.certFile
	return d
}

// settings points a world at the device's certificate and TPM key.
func (d *tpmDevice) settings(w *world) {
	delete(w.settings, "deviceId")
	delete(w.settings, "password")
	delete(w.settings, "key")
	w.settings["deviceIdPattern"] = "{{subject-cn}}"
	w.settings["cert"] = d.pki.certFile
	d.tpm.Settings(w.settings, d.priv, d.pub)
}

// The suite connector connects to a hub that requires client certificates
// with its private key in the TPM, and its data flows.
func TestTLSWithTPMKey(t *testing.T) {
	d := newTPMDevice(t, "ns:tpm-gw")
	w := tlsWorld(t, d.pki, true)
	d.settings(w)
	w.start()
	w.awaitCause(0, "connected")
	w.publish("e", []byte(`{"tpm":true}`), 1)
	if _, err := w.nb.Await(ctxT(t), "event/T/ns:tpm-gw", 1); err != nil {
		t.Fatal(err)
	}
}

// A wrong TPM setting stops the connector at start-up with an error that
// says what is wrong; it does not wait for a handshake to fail.
func TestTLSWithTPMKeyMisconfigured(t *testing.T) {
	d := newTPMDevice(t, "ns:tpm-gw")
	for _, tc := range []struct {
		name string
		edit func(*world)
		want string
	}{
		{"no such device", func(w *world) { w.settings["tpmDevice"] = "/dev/no-such-tpm" }, "TPM device"},
		{"wrong handle", func(w *world) { w.settings["tpmHandle"] = 0x81000002 }, "TPM parent key: handle 0x81000002"},
		{"corrupted blob", func(w *world) { w.settings["tpmKey"] = d.pub }, "TPM key blob"},
		{"certificate of another key", func(w *world) { w.settings["cert"] = d.otherCertFile }, "certificate does not match the TPM key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tlsWorld(t, d.pki, true)
			d.settings(w)
			tc.edit(w)
			w.start()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			select {
			case <-w.exited:
			case <-ctx.Done():
				t.Fatal("the connector kept running")
			}
			if code := w.proc.ProcessState.ExitCode(); code == 0 || code == -1 {
				t.Errorf("exit code %d", code)
			}
			log := w.logBuf.String()
			if !strings.Contains(log, tc.want) {
				t.Errorf("log does not say %q:\n%s", tc.want, log)
			}
			t.Log(strings.TrimSpace(log))
			if n := w.adapter.Attempts(); n != 0 {
				t.Errorf("%d connection attempts", n)
			}
		})
	}
}
