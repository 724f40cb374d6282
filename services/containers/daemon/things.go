package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/kantofw/kanto/services/containers/ctrd"
	"github.com/kantofw/kanto/services/containers/metrics"
	"github.com/kantofw/kanto/services/containers/mgr"
	"github.com/kantofw/kanto/services/containers/things"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// startThings connects to the local broker and serves the Ditto features.
// A broker that is down is not fatal: the client keeps reconnecting. The
// returned function disconnects.
func startThings(ctx context.Context, cfg Config, m *mgr.Manager, _ *ctrd.Client, log *slog.Logger) func() {
	cc := cfg.Connection
	var tlsCfg *tls.Config
	if mqtt.IsSecure(cc.BrokerURL) {
		var err error
		if tlsCfg, err = brokerTLS(cc); err != nil {
			log.Error("broker TLS", "err", err)
			return func() {}
		}
	}
	var th *things.Things
	runCtx, cancel := context.WithCancel(ctx)
	client := mqtt.New(mqtt.Options{
		URL: cc.BrokerURL, ClientID: fmt.Sprintf("container-management-%d", os.Getpid()),
		Username: cc.ClientUsername, Password: cc.ClientPassword, TLS: tlsCfg,
		KeepAlive: time.Duration(cc.KeepAlive), ConnectTimeout: time.Duration(cc.ConnectTimeout),
		AutoReconnect: true, CleanSession: true, Log: log,
		OnConnect: func() {
			// Owned by the connection: one short-lived call per connect.
			go func() {
				if err := th.OnConnect(runCtx); err != nil {
					log.Warn("thing request", "err", err)
				}
			}()
		},
	})
	th = things.New(client, m, things.Options{
		Features: cfg.Things.Features, Sampler: metrics.Reader{}, Log: log,
		StateFile: filepath.Join(cfg.Things.HomeDir, "things-features.json"),
	})
	done := make(chan struct{})
	// Owned by startThings: ends when the returned stop cancels runCtx.
	go func() {
		defer close(done)
		for runCtx.Err() == nil {
			if err := client.Connect(runCtx); err == nil {
				break
			} else {
				log.Warn("local broker not reachable, retrying", "url", cc.BrokerURL, "err", err)
			}
			select {
			case <-runCtx.Done():
				return
			case <-time.After(5 * time.Second):
			}
		}
		th.Run(runCtx)
	}()
	return func() {
		cancel()
		<-done
		client.Close()
	}
}

func brokerTLS(cc ConnConfig) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if cc.Transport.RootCA != "" {
		pem, err := os.ReadFile(cc.Transport.RootCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificates in %s", cc.Transport.RootCA)
		}
		c.RootCAs = pool
	}
	if cc.Transport.ClientCert != "" {
		cert, err := tls.LoadX509KeyPair(cc.Transport.ClientCert, cc.Transport.ClientKey)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
