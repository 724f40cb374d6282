package bundle

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

// Signature algorithms (FORMAT.md §3).
const (
	AlgEd25519     = "ed25519"
	AlgECDSAP256   = "ecdsa-p256-sha256"
	AlgRSAPKCS1v15 = "rsa-pkcs1v15-sha256"
	AlgRSAPSS      = "rsa-pss-sha256"
)

// Signature is the signature block of a bundle.
type Signature struct {
	Algorithm    string   `json:"algorithm"`
	Signature    string   `json:"signature"`
	Certificates []string `json:"certificates,omitempty"`
	KeyID        string   `json:"keyId"`
}

// ParseSignature decodes a signature block; unknown fields are rejected.
func ParseSignature(data []byte) (*Signature, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Signature
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("signature block: %w: %w", err, ErrFormat)
	}
	return &s, nil
}

// KeyID is the hex SHA-256 of a public key's PKIX DER.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// Keyring is the set of trust anchors of a device: CA certificates and raw
// public keys.
type Keyring struct {
	roots *x509.CertPool
	nCAs  int
	keys  map[string]crypto.PublicKey
}

// ParseKeyring reads PEM CERTIFICATE and PUBLIC KEY blocks.
func ParseKeyring(data []byte) (*Keyring, error) {
	k := &Keyring{roots: x509.NewCertPool(), keys: map[string]crypto.PublicKey{}}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("keyring certificate: %w: %w", err, ErrFormat)
			}
			k.roots.AddCert(c)
			k.nCAs++
		case "PUBLIC KEY":
			pub, err := x509.ParsePKIXPublicKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("keyring public key: %w: %w", err, ErrFormat)
			}
			id, err := KeyID(pub)
			if err != nil {
				return nil, err
			}
			k.keys[id] = pub
		}
	}
	if k.nCAs == 0 && len(k.keys) == 0 {
		return nil, fmt.Errorf("keyring holds no CERTIFICATE or PUBLIC KEY: %w", ErrFormat)
	}
	return k, nil
}

// LoadKeyring reads a keyring PEM file.
func LoadKeyring(path string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// Signer describes who signed a verified manifest.
type Signer struct {
	KeyID   string `json:"keyId"`
	Subject string `json:"subject,omitempty"`
	Issuer  string `json:"issuer,omitempty"`
}

// Verify checks sig over manifest: the key is trusted (a keyring key, or a
// certificate chaining to a keyring CA, valid at now, usable for code
// signing), its type matches the algorithm, and the signature verifies.
func (k *Keyring) Verify(manifest []byte, sig *Signature, now time.Time) (*Signer, error) {
	raw, err := base64.StdEncoding.DecodeString(sig.Signature)
	if err != nil || len(raw) == 0 {
		return nil, fmt.Errorf("signature encoding: %w", ErrFormat)
	}
	var pub crypto.PublicKey
	who := &Signer{}
	if len(sig.Certificates) > 0 {
		certs := make([]*x509.Certificate, len(sig.Certificates))
		for i, s := range sig.Certificates {
			der, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, fmt.Errorf("certificate %d encoding: %w", i, ErrFormat)
			}
			if certs[i], err = x509.ParseCertificate(der); err != nil {
				return nil, fmt.Errorf("certificate %d: %w: %w", i, err, ErrFormat)
			}
		}
		leaf := certs[0]
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		if k.nCAs == 0 {
			return nil, fmt.Errorf("signed with a certificate, keyring has no CA: %w", ErrUntrusted)
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots: k.roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		})
		if err != nil {
			return nil, fmt.Errorf("certificate %q: %w: %w", leaf.Subject, err, ErrUntrusted)
		}
		if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			return nil, fmt.Errorf("certificate %q lacks digitalSignature usage: %w", leaf.Subject, ErrUntrusted)
		}
		pub = leaf.PublicKey
		who.Subject, who.Issuer = leaf.Subject.String(), leaf.Issuer.String()
	} else {
		var ok bool
		if pub, ok = k.keys[sig.KeyID]; !ok {
			return nil, fmt.Errorf("key %q not in keyring: %w", sig.KeyID, ErrUntrusted)
		}
	}
	if who.KeyID, err = KeyID(pub); err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrUntrusted)
	}
	if err := verifyRaw(pub, sig.Algorithm, manifest, raw); err != nil {
		return nil, err
	}
	if sig.KeyID != who.KeyID {
		return nil, fmt.Errorf("keyId %q does not match the signer's key: %w", sig.KeyID, ErrFormat)
	}
	return who, nil
}

func verifyRaw(pub crypto.PublicKey, alg string, msg, sig []byte) error {
	digest := sha256.Sum256(msg)
	mismatch := fmt.Errorf("algorithm %q does not match a %T key: %w", alg, pub, ErrUntrusted)
	var ok bool
	switch alg {
	case AlgEd25519:
		p, isEd := pub.(ed25519.PublicKey)
		if !isEd {
			return mismatch
		}
		ok = ed25519.Verify(p, msg, sig)
	case AlgECDSAP256:
		p, isEC := pub.(*ecdsa.PublicKey)
		if !isEC || p.Curve != elliptic.P256() {
			return mismatch
		}
		ok = ecdsa.VerifyASN1(p, digest[:], sig)
	case AlgRSAPKCS1v15, AlgRSAPSS:
		p, isRSA := pub.(*rsa.PublicKey)
		if !isRSA {
			return mismatch
		}
		if p.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits: %w", p.N.BitLen(), ErrUntrusted)
		}
		var err error
		if alg == AlgRSAPSS {
			err = rsa.VerifyPSS(p, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			err = rsa.VerifyPKCS1v15(p, crypto.SHA256, digest[:], sig)
		}
		ok = err == nil
	default:
		return fmt.Errorf("algorithm %q: %w", alg, ErrFormat)
	}
	if !ok {
		return ErrSignature
	}
	return nil
}

var errNoKey = errors.New("no private key in PEM")
