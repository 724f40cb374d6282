package uplink

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/kantofw/kanto/services/internal/tpmkey"
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

// HubTLS is TLSConfig for a cloud connection whose client key may be in a
// TPM: with key non-nil, the certificate (and any intermediates after it)
// comes from certFile, which must be for key, and keyFile is not used.
func HubTLS(caFile, certFile, keyFile string, key *tpmkey.Key, alpn []string) (cfg *tls.Config, leaf *x509.Certificate, err error) {
	if key == nil {
		return TLSConfig(caFile, certFile, keyFile, alpn)
	}
	if cfg, _, err = TLSConfig(caFile, "", "", alpn); err != nil {
		return nil, nil, err
	}
	chain, err := readCertChain(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: client certificate: %v", ErrTLS, err)
	}
	if leaf, err = x509.ParseCertificate(chain[0]); err != nil {
		return nil, nil, fmt.Errorf("%w: client certificate %s: %v", ErrTLS, certFile, err)
	}
	if err := key.CheckCertificate(leaf); err != nil {
		return nil, nil, fmt.Errorf("%w: cert %s: %w", ErrTLS, certFile, err)
	}
	cfg.Certificates = []tls.Certificate{{
		Certificate: chain, Leaf: leaf, PrivateKey: key,
		SupportedSignatureAlgorithms: key.SignatureSchemes(),
	}}
	return cfg, leaf, nil
}

// readCertChain returns the DER certificates of a PEM file, leaf first.
func readCertChain(file string) ([][]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var chain [][]byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			chain = append(chain, b.Bytes)
		}
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return chain, nil
}
