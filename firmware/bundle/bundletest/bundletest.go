// Package bundletest builds signed bundles and throwaway PKIs for tests of
// the bundle, installer and OTA packages.
package bundletest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/kantofw/kanto/firmware/bundle"
)

// PKI is a CA and a signing key with its certificate.
type PKI struct {
	CAKey   crypto.Signer
	CA      *x509.Certificate
	Key     crypto.Signer
	Cert    *x509.Certificate
	Keyring *bundle.Keyring
	// KeyringPEM is the CA certificate (the device keyring).
	KeyringPEM []byte
}

// NewPKI makes a CA and a signing key of alg ("ed25519", "ecdsa", "rsa").
func NewPKI(t testing.TB, alg string) *PKI {
	t.Helper()
	now := time.Now()
	p := &PKI{}
	var err error
	if p.CAKey, err = bundle.GenerateKey("ecdsa"); err != nil {
		t.Fatal(err)
	}
	if p.CA, err = bundle.IssueCert(bundle.CertTemplate{CommonName: "test CA", CA: true, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}, p.CAKey.Public(), nil, p.CAKey); err != nil {
		t.Fatal(err)
	}
	if p.Key, err = bundle.GenerateKey(alg); err != nil {
		t.Fatal(err)
	}
	if p.Cert, err = bundle.IssueCert(bundle.CertTemplate{CommonName: "test signer", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}, p.Key.Public(), p.CA, p.CAKey); err != nil {
		t.Fatal(err)
	}
	p.KeyringPEM = bundle.PEMCert(p.CA)
	if p.Keyring, err = bundle.ParseKeyring(p.KeyringPEM); err != nil {
		t.Fatal(err)
	}
	return p
}

// Signer signs with the key and its certificate.
func (p *PKI) Signer() *bundle.KeySigner {
	return &bundle.KeySigner{Key: p.Key, Chain: []*x509.Certificate{p.Cert}}
}

// WriteKeyring writes the keyring PEM into dir and returns its path.
func (p *PKI) WriteKeyring(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "keyring.pem")
	if err := os.WriteFile(path, p.KeyringPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Options of Build.
type Options struct {
	Compatible  []string // default {"test-board"}
	Version     string   // default "1.0.0"
	Compression string
	ChunkSize   int64 // default 64 KiB, so small images still have several chunks
}

// Build returns a bundle holding images (class → bytes), signed by signer.
func Build(t testing.TB, signer *bundle.KeySigner, images map[string][]byte, opts Options) []byte {
	t.Helper()
	dir := t.TempDir()
	classes := make([]string, 0, len(images))
	for c := range images {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	var srcs []bundle.Source
	for _, c := range classes {
		p := filepath.Join(dir, c+".img")
		if err := os.WriteFile(p, images[c], 0o644); err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, bundle.Source{Class: c, Path: p})
	}
	if opts.Compatible == nil {
		opts.Compatible = []string{"test-board"}
	}
	if opts.Version == "" {
		opts.Version = "1.0.0"
	}
	if opts.ChunkSize == 0 {
		opts.ChunkSize = 64 << 10
	}
	var out bytes.Buffer
	_, err := bundle.Create(context.Background(), &out, signer, bundle.CreateOptions{
		Compatible: opts.Compatible, Version: opts.Version, Compression: opts.Compression, ChunkSize: opts.ChunkSize, TempDir: dir,
	}, srcs)
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// Image returns n bytes of deterministic, poorly compressible data.
func Image(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}
