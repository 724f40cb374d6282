package connector

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/kantofw/kanto/services/internal/ditto"
)

// ErrTLS marks unusable certificates or keys.
var ErrTLS = errors.New("TLS configuration")

// tlsConfig builds a client TLS config: CA pool, optional client pair,
// TLS 1.2 to 1.3, ALPN. cert is nil when no client certificate is used.
func tlsConfig(caFile, certFile, keyFile string, alpn []string) (*tls.Config, *x509.Certificate, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13, NextProtos: alpn}
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
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: client certificate: %v", ErrTLS, err)
	}
	cfg.Certificates = []tls.Certificate{pair}
	return cfg, leaf, nil
}

// resolvePattern fills {{subject-dn}} and {{subject-cn}} from cert.
func resolvePattern(pattern string, cert *x509.Certificate) (string, error) {
	if cert == nil {
		return "", fmt.Errorf("%w: deviceIdPattern needs a client certificate", ErrTLS)
	}
	id := strings.ReplaceAll(pattern, "{{subject-dn}}", cert.Subject.String())
	id = strings.ReplaceAll(id, "{{subject-cn}}", cert.Subject.CommonName)
	if _, _, err := ditto.SplitID(id); err != nil {
		return "", fmt.Errorf("deviceIdPattern %q gives %q: %w", pattern, id, err)
	}
	return id, nil
}
