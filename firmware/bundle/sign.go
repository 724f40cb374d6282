package bundle

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// KeySigner signs manifests with a private key and, optionally, the
// certificate chain (signer first) that vouches for it.
type KeySigner struct {
	Key   crypto.Signer
	Chain []*x509.Certificate
}

// ParsePrivateKey reads a PKCS#8, SEC 1 (EC) or PKCS#1 (RSA) PEM key.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errNoKey
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%T is not a signing key", k)
		}
		return s, nil
	}
}

// ParseCertificates reads all PEM CERTIFICATE blocks.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no CERTIFICATE in PEM")
	}
	return out, nil
}

// LoadKeySigner reads a key file and, if certPath is not empty, a
// certificate chain file (signer first, then intermediates).
func LoadKeySigner(keyPath, certPath string) (*KeySigner, error) {
	data, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	key, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	s := &KeySigner{Key: key}
	if certPath != "" {
		data, err := os.ReadFile(certPath)
		if err != nil {
			return nil, err
		}
		if s.Chain, err = ParseCertificates(data); err != nil {
			return nil, fmt.Errorf("%s: %w", certPath, err)
		}
	}
	return s, nil
}

// Sign returns the signature block for manifest.
func (s *KeySigner) Sign(manifest []byte) (*Signature, error) {
	var alg string
	var sig []byte
	var err error
	digest := sha256.Sum256(manifest)
	switch k := s.Key.(type) {
	case ed25519.PrivateKey:
		alg, sig = AlgEd25519, ed25519.Sign(k, manifest)
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA curve %s, only P-256 is supported", k.Curve.Params().Name)
		}
		alg = AlgECDSAP256
		sig, err = ecdsa.SignASN1(rand.Reader, k, digest[:])
	case *rsa.PrivateKey:
		alg = AlgRSAPKCS1v15
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:])
	default:
		return nil, fmt.Errorf("unsupported key type %T", s.Key)
	}
	if err != nil {
		return nil, err
	}
	id, err := KeyID(s.Key.Public())
	if err != nil {
		return nil, err
	}
	out := &Signature{Algorithm: alg, Signature: base64.StdEncoding.EncodeToString(sig), KeyID: id}
	for _, c := range s.Chain {
		out.Certificates = append(out.Certificates, base64.StdEncoding.EncodeToString(c.Raw))
	}
	return out, nil
}

// GenerateKey makes a signing key: "ed25519", "ecdsa" (P-256) or "rsa"
// (3072 bits).
func GenerateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case "", "ecdsa":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		return rsa.GenerateKey(rand.Reader, 3072)
	}
	return nil, fmt.Errorf("key algorithm %q: want ed25519, ecdsa or rsa", alg)
}

// CertTemplate describes a certificate to issue (for keygen and tests).
type CertTemplate struct {
	CommonName string
	CA         bool
	NotBefore  time.Time
	NotAfter   time.Time
	// NoCodeSigning leaves the code-signing usage out of a leaf.
	NoCodeSigning bool
}

// IssueCert issues a certificate for pub, signed by parentKey/parent (self
// signed when parent is nil).
func IssueCert(t CertTemplate, pub crypto.PublicKey, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: t.CommonName, Organization: []string{"Kanto firmware (development)"}},
		NotBefore:    t.NotBefore,
		NotAfter:     t.NotAfter,
	}
	if t.CA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		if !t.NoCodeSigning {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
		} else {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// PEMCert encodes a certificate.
func PEMCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// PEMKey encodes a private key as PKCS#8.
func PEMKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// PEMPublicKey encodes a public key as PKIX (a keyring entry).
func PEMPublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// GenerateDevPKI writes a development PKI into dir: ca.crt (ECDSA P-256 CA,
// 10 years; the device keyring), signing.key (alg) and signing.crt (code
// signing, 2 years). The CA key is not kept.
func GenerateDevPKI(dir, alg string, now time.Time) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	caKey, err := GenerateKey("ecdsa")
	if err != nil {
		return err
	}
	ca, err := IssueCert(CertTemplate{CommonName: "Kanto firmware development CA", CA: true, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0)}, caKey.Public(), nil, caKey)
	if err != nil {
		return err
	}
	key, err := GenerateKey(alg)
	if err != nil {
		return err
	}
	leaf, err := IssueCert(CertTemplate{CommonName: "Kanto firmware signing (development)", NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(2, 0, 0)}, key.Public(), ca, caKey)
	if err != nil {
		return err
	}
	keyPEM, err := PEMKey(key)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{{"ca.crt", PEMCert(ca), 0o644}, {"signing.key", keyPEM, 0o600}, {"signing.crt", PEMCert(leaf), 0o644}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return err
		}
	}
	return nil
}
