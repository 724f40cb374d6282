package awsiot

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/internal/testenv"
	"github.com/kantofw/kanto/services/internal/cloudpeer"
)

// Cloud is a simulated AWS IoT Core endpoint for a test: a real Mosquitto
// that requires client certificates of CA on its device listener (the
// "endpoint", mqtts), the Device Shadow and provisioning simulator and a
// northbound recorder of events and telemetry on its back-end listener.
type Cloud struct {
	CA       *CA
	CAFile   string // PEM of the CA, the devices' caCert ("aws.crt")
	Endpoint string // tls://127.0.0.1:<port>
	Backend  string // tcp://127.0.0.1:<port>, no authentication
	Broker   *mosquittotest.Broker
	Service  *Service
	NB       *cloudpeer.Northbound
	dir      string
}

// NewCloud starts everything; it is stopped when the test ends.
func NewCloud(t testing.TB, o Options) *Cloud {
	t.Helper()
	dir := t.TempDir()
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cloud{CA: ca, CAFile: filepath.Join(dir, "aws.crt"), dir: dir}
	if err := os.WriteFile(c.CAFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	srvCert, srvKey, err := ca.WriteFiles(dir, "broker", "localhost", true)
	if err != nil {
		t.Fatal(err)
	}
	backend := testenv.FreePort(t)
	c.Broker = mosquittotest.Start(t, mosquittotest.Options{
		TLS:   &mosquittotest.TLS{CAFile: c.CAFile, CertFile: srvCert, KeyFile: srvKey, RequireCert: true},
		Extra: fmt.Sprintf("max_queued_messages 100000\nlistener %d 127.0.0.1\n", backend),
	})
	c.Endpoint = "tls://" + c.Broker.Addr()
	c.Backend = "tcp://" + testenv.Addr(backend)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if o.CA == nil {
		o.CA = ca
	}
	// The back-end listener may open a moment after the device listener
	// the broker runner waited for.
	for {
		if c.Service, err = Start(ctx, c.Backend, nil, o); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Service.Close)
	c.NB, err = cloudpeer.NewNorthbound(ctx, c.Backend)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.NB.Close)
	return c
}

// DeviceFiles issues a device certificate with common name cn and returns
// the paths of its certificate and key.
func (c *Cloud) DeviceFiles(t testing.TB, name, cn string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, err := c.CA.WriteFiles(c.dir, name, cn, false)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// DeviceTLS is a client TLS config for a device certificate.
func (c *Cloud) DeviceTLS(t testing.TB, certFile, keyFile string) *tls.Config {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509Pool(c.CA)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}
