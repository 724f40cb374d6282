package fileupload

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/internal/cloudpeer/awsiot"
	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// TestLocalBrokerMutualTLS runs the service against a Mosquitto that
// requires client certificates (caCert, cert, key) and does a whole
// trigger → start → upload round over it; a certificate from another CA is
// refused by the broker and the service does not come up.
func TestLocalBrokerMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := awsiot.NewCA()
	must(t, err)
	caFile := filepath.Join(dir, "ca.crt")
	must(t, os.WriteFile(caFile, ca.PEM, 0o644))
	srvCert, srvKey, err := ca.WriteFiles(dir, "broker", "localhost", true)
	must(t, err)
	cliCert, cliKey, err := ca.WriteFiles(dir, "file-upload", "file-upload", false)
	must(t, err)
	cloudCert, cloudKey, err := ca.WriteFiles(dir, "cloud", "cloud", false)
	must(t, err)
	b := mosquittotest.Start(t, mosquittotest.Options{TLS: &mosquittotest.TLS{CAFile: caFile, CertFile: srvCert, KeyFile: srvKey, RequireCert: true}})
	url := "ssl://" + b.Addr()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	kp, err := tls.LoadX509KeyPair(cloudCert, cloudKey)
	must(t, err)
	cl := startCloudWith(t, mqtt.Options{URL: url, ClientID: "cloud", CleanSession: true,
		TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}})

	files := t.TempDir()
	writeFile(t, filepath.Join(files, "a.log"), "over TLS")
	st, hs := newStore(t)
	cfg := Defaults()
	cfg.Files = filepath.Join(files, "*.log")
	cfg.Broker, cfg.CACert, cfg.Cert, cfg.Key = url, caFile, cliCert, cliKey
	s := startServiceAt(t, cfg)
	cl.waitFor("feature over TLS", func() bool {
		for _, ev := range cl.events {
			if ev.Path == "/features/AutoUploadable" {
				return true
			}
		}
		return false
	})
	e := &env{dir: files, cloud: cl, svc: s}
	reqs := e.trigger(t, `{"correlationId":"tls"}`, "tls", 1)
	e.start(t, reqs[0].CorrelationID, map[string]string{"https.url": hs.URL + "/a.log"})
	cl.waitFor("upload over TLS", func() bool {
		_, ok := st.get("a.log")
		return ok
	})
	if got, _ := st.get("a.log"); string(got) != "over TLS" {
		t.Fatalf("uploaded %q", got)
	}

	// A client certificate of another CA: the broker refuses every
	// handshake, so the service keeps retrying and never reports ready.
	other, err := awsiot.NewCA()
	must(t, err)
	badCert, badKey, err := other.WriteFiles(dir, "stranger", "stranger", false)
	must(t, err)
	cfg.Cert, cfg.Key, cfg.LogFile = badCert, badKey, ""
	s2, err := New(cfg, logging.Discard())
	must(t, err)
	ctx2, cancel2 := context.WithCancel(context.Background())
	var ready atomic.Bool
	done2 := make(chan error, 1)
	go func() { done2 <- s2.Run(ctx2, func(string) { ready.Store(true) }) }()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(b.Log(), "certificate verify failed") {
		if time.Now().After(deadline) {
			cancel2()
			t.Fatalf("the broker never saw the foreign certificate:\n%s", b.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel2()
	if err := <-done2; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ready.Load() {
		t.Fatal("service reported ready with a certificate the broker refuses")
	}
}
