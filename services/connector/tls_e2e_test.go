package connector_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kantofw/kanto/services/internal/cloudpeer"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// pki is a test CA with a server and a client certificate, written as PEM.
type pki struct {
	dir                       string
	caFile, certFile, keyFile string // client pair
	serverCert                tls.Certificate
	pool                      *x509.CertPool
	clientSubject             string
}

func newPKI(t *testing.T, clientCN string) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(ca)
	issue := func(serial int64, cn string, server bool) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, Organization: []string{"Kanto Test"}},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
		if server {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		} else {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	write := func(name, typ string, der []byte) string {
		f := filepath.Join(p.dir, name)
		if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	p.caFile = write("ca.crt", "CERTIFICATE", caDER)
	sDER, sKey := issue(2, "hub", true)
	sKeyDER, _ := x509.MarshalECPrivateKey(sKey)
	p.serverCert = tls.Certificate{Certificate: [][]byte{sDER}, PrivateKey: sKey}
	_ = sKeyDER
	cDER, cKey := issue(3, clientCN, false)
	cKeyDER, _ := x509.MarshalECPrivateKey(cKey)
	p.certFile = write("client.crt", "CERTIFICATE", cDER)
	p.keyFile = write("client.key", "EC PRIVATE KEY", cKeyDER)
	leaf, _ := x509.ParseCertificate(cDER)
	p.clientSubject = leaf.Subject.String()
	return p
}

// tlsWorld swaps the plain adapter for a TLS one.
func tlsWorld(t *testing.T, p *pki, mutual bool) *world {
	return tlsWorldWith(t, p, mutual, nil)
}

// tlsWorldWith is tlsWorld with a hook on the hub's TLS configuration.
func tlsWorldWith(t *testing.T, p *pki, mutual bool, tune func(*tls.Config)) *world {
	w := newWorld(t, worldOptions{})
	cfg := &tls.Config{Certificates: []tls.Certificate{p.serverCert}, MinVersion: tls.VersionTLS12}
	if tune != nil {
		tune(cfg)
	}
	if mutual {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = p.pool
	}
	a, err := cloudpeer.NewAdapter(w.hub.Addr(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	a.AddCredential(cloudpeer.Credential{Tenant: tenant, AuthID: authID, Password: password})
	a.AddCertificate(p.clientSubject)
	w.adapter = a
	w.settings["address"] = "mqtts://" + a.Addr()
	w.settings["caCert"] = p.caFile
	return w
}

func TestTLSPassword(t *testing.T) {
	p := newPKI(t, "ns:gw")
	w := tlsWorld(t, p, false)
	w.start()
	w.awaitCause(0, "connected")
	w.publish("t", []byte("over tls"), 1)
	if _, err := w.nb.Await(ctxT(t), "telemetry/T/ns:gw", 1); err != nil {
		t.Fatal(err)
	}
}

// alpn offers the protocols of the "alpn" setting in the TLS handshake
// (AWS IoT on port 443 needs x-amzn-mqtt-ca).
func TestTLSALPN(t *testing.T) {
	p := newPKI(t, "ns:gw")
	offered := make(chan []string, 16)
	w := tlsWorldWith(t, p, false, func(c *tls.Config) {
		c.NextProtos = []string{"x-amzn-mqtt-ca"}
		c.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			select {
			case offered <- h.SupportedProtos:
			default:
			}
			return nil, nil
		}
	})
	w.settings["alpn"] = []string{"x-amzn-mqtt-ca"}
	w.start()
	w.awaitCause(0, "connected")
	if got := <-offered; len(got) != 1 || got[0] != "x-amzn-mqtt-ca" {
		t.Errorf("client offered ALPN %q, want [x-amzn-mqtt-ca]", got)
	}
}

// Over TLS without a client certificate, username wins over
// authId@tenant (reference §1.7).
func TestTLSUsernameOverAuthID(t *testing.T) {
	p := newPKI(t, "ns:gw")
	w := tlsWorld(t, p, false)
	w.settings["authId"] = "not-the-one"
	w.settings["username"] = authID + "@" + tenant
	w.start()
	w.awaitCause(0, "connected")
}

func TestTLSWrongCA(t *testing.T) {
	p := newPKI(t, "ns:gw")
	other := newPKI(t, "x")
	w := tlsWorld(t, p, false)
	w.settings["caCert"] = other.caFile
	w.start()
	w.awaitCause(0, "CONNECTION_ERROR")
	if n := w.adapter.Attempts(); n != 0 {
		t.Errorf("%d CONNECTs got through a TLS handshake with the wrong CA", n)
	}
}

func TestMutualTLSWithDeviceIDFromCertificate(t *testing.T) {
	p := newPKI(t, "ns:gw")
	w := tlsWorld(t, p, true)
	delete(w.settings, "deviceId")
	delete(w.settings, "password")
	w.settings["deviceIdPattern"] = "{{subject-cn}}"
	w.settings["cert"] = p.certFile
	w.settings["key"] = p.keyFile
	replies := w.record("edge/thing/response")
	w.start()
	w.awaitCause(0, "connected")
	got := replies.await(t, "thing info", func(ms []mqtt.Message) bool { return len(ms) > 0 })
	if want := `{"deviceId":"ns:gw","tenantId":"T"}`; string(got[0].Payload) != want {
		t.Errorf("thing info %s, want %s", got[0].Payload, want)
	}
	w.publish("e", []byte(`{"x":1}`), 1)
	if _, err := w.nb.Await(ctxT(t), "event/T/ns:gw", 1); err != nil {
		t.Fatal(err)
	}
}

// The local broker restarts (with persistence) while the cloud is away:
// what the connector took before is on its disk, what apps publish after
// reaches it once the broker is back; all arrives in order.
func TestLocalBrokerRestart(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.start()
	w.awaitCause(0, "connected")
	w.adapter.Cut()
	for i := range 100 {
		w.publish("e", []byte(strconv.Itoa(i)), 1)
	}
	time.Sleep(300 * time.Millisecond)
	w.local.Restart()
	if err := w.app.WaitConnected(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the connector's clients reconnect on their own
	for i := 100; i < 200; i++ {
		w.publish("e", []byte(strconv.Itoa(i)), 1)
	}
	w.adapter.Restore()
	got, err := w.nb.Await(ctxT(t), "event/#", 200)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range got[:200] {
		if string(m.Payload) != strconv.Itoa(i) {
			t.Fatalf("event %d = %s", i, m.Payload)
		}
	}
}
