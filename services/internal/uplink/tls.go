package uplink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrTLS marks unusable certificates or keys.
var ErrTLS = errors.New("TLS configuration")

// TLSConfig builds a client TLS config: CA pool, optional client pair,
// TLS 1.2 to 1.3, ALPN. leaf is nil when no client certificate is used.
func TLSConfig(caFile, certFile, keyFile string, alpn []string) (cfg *tls.Config, leaf *x509.Certificate, err error) {
	cfg = &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13, NextProtos: alpn}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: caCert: %v", ErrTLS, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("%w: caCert %s holds no PEM certificate", ErrTLS, caFile)
		}
		cfg.RootCAs = pool
	}
	if certFile == "" && keyFile == "" {
		return cfg, nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, nil, fmt.Errorf("%w: cert and key must be given together", ErrTLS)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: client certificate: %v", ErrTLS, err)
	}
	leaf, err = x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: client certificate: %v", ErrTLS, err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	return cfg, leaf, nil
}
