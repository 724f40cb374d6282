// Package tpmkey signs with a TPM 2.0 key, so that a TLS client key never
// leaves the TPM. The key is the pair of blob files that tpm2-tools makes
// for a child key of a persistent storage key:
//
//	tpm2_create -C 0x81000001 -G rsa2048 -u key.pub -r key.priv
//
// Open loads them under that parent through a TPM character device
// (/dev/tpmrm0) or a simulator's unix socket (swtpm socket), and returns a
// Key: a crypto.Signer for tls.Certificate.PrivateKey. The key's
// authorisation value and the parent's must be empty, as upstream expects.
//
// Without a resource manager (/dev/tpm0, swtpm) the loaded key occupies one
// of the TPM's few transient object slots until Close flushes it; a
// process killed before Close leaves it there until the next TPM reset.
// Use /dev/tpmrm0 where the kernel offers it.
package tpmkey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// Error categories; errors wrap one of them (a key the TPM refuses to load
// under the given parent wraps both ErrParent and ErrBlob: the TPM cannot
// tell a wrong parent from a damaged blob).
var (
	// ErrDevice: the TPM device or socket is missing, cannot be opened, or
	// does not answer as a TPM 2.0.
	ErrDevice = errors.New("TPM device")
	// ErrBlob: a key blob file is unreadable or malformed.
	ErrBlob = errors.New("TPM key blob")
	// ErrParent: the parent handle holds no storage key, or not the one
	// the blobs were created under.
	ErrParent = errors.New("TPM parent key")
	// ErrUnsupported: the key is well formed but cannot sign TLS
	// handshakes (restricted, not a signing key, or another algorithm).
	ErrUnsupported = errors.New("unsupported TPM key")
	// ErrMismatch: a certificate is not for this key.
	ErrMismatch = errors.New("certificate does not match the TPM key")
	// ErrSign: the TPM refused to sign.
	ErrSign = errors.New("TPM signature")
	// ErrClosed: the key was closed.
	ErrClosed = errors.New("TPM key closed")
)

// Options say where the TPM and the key are.
type Options struct {
	// Device is a TPM character device (/dev/tpmrm0, /dev/tpm0) or the
	// server unix socket of a TPM simulator.
	Device string
	// Parent is the handle of the storage key the blobs were created
	// under, usually persistent (0x81000001).
	Parent uint32
	// Private and Public are the files of tpm2_create -r and -u.
	Private, Public string
}

// Key is a TPM-resident signing key. It is safe for concurrent use: the
// commands of concurrent handshakes are serialised on one connection.
type Key struct {
	info keyInfo

	mu     sync.Mutex
	tpm    *conn // nil once closed
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
}

var _ crypto.Signer = (*Key)(nil)

// Open connects to the TPM and loads the key under its parent. Close
// releases both.
func Open(o Options) (*Key, error) {
	if o.Parent == 0 {
		return nil, fmt.Errorf("%w: no parent handle given", ErrParent)
	}
	pubBody, err := readBlob(o.Public, "public key")
	if err != nil {
		return nil, err
	}
	public, info, err := parsePublic(pubBody)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Public, err)
	}
	privBody, err := readBlob(o.Private, "private key")
	if err != nil {
		return nil, err
	}
	if o.Device == "" {
		return nil, fmt.Errorf("%w: no device given", ErrDevice)
	}
	c, err := dial(o.Device)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Device, err)
	}
	k := &Key{info: info, tpm: c}
	if err := k.load(o, public, privBody); err != nil {
		c.Close()
		return nil, err
	}
	if err := k.selfTest(); err != nil {
		k.Close()
		return nil, fmt.Errorf("%s: %w", o.Private, err)
	}
	return k, nil
}

// selfTest signs once and verifies the signature, so that a key the TPM
// will not sign with (an authorisation value, a scheme it lacks) shows at
// Open, not at the first handshake.
func (k *Key) selfTest() error {
	digest := sha256.Sum256([]byte("kanto tpmkey self-test"))
	var opts crypto.SignerOpts = crypto.SHA256
	pub, isRSA := k.info.pub.(*rsa.PublicKey)
	if isRSA && k.info.scheme != tpm2.TPMAlgRSASSA {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	}
	sig, err := k.Sign(nil, digest[:], opts)
	if errors.Is(err, tpm2.TPMRCAuthFail) || errors.Is(err, tpm2.TPMRCBadAuth) {
		return fmt.Errorf("%w: the key has an authorisation value (tpm2_create -p); only keys without one can be used: %v", ErrUnsupported, err)
	}
	if err != nil {
		return err
	}
	switch {
	case isRSA && k.info.scheme == tpm2.TPMAlgRSASSA:
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
	case isRSA:
		err = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, opts.(*rsa.PSSOptions))
	case !ecdsa.VerifyASN1(k.info.pub.(*ecdsa.PublicKey), digest[:], sig):
		err = errors.New("ECDSA verification failed")
	}
	if err != nil {
		return fmt.Errorf("%w: the TPM's test signature does not verify: %v", ErrSign, err)
	}
	return nil
}

// load reads the parent's name (checking that it is a storage key) and
// loads the blobs under it.
func (k *Key) load(o Options, public *tpm2.TPMTPublic, priv []byte) error {
	parent := tpm2.TPMHandle(o.Parent)
	rp, err := run(func() (*tpm2.ReadPublicResponse, error) { return tpm2.ReadPublic{ObjectHandle: parent}.Execute(k.tpm) })
	if err != nil {
		if errors.Is(err, ErrDevice) {
			return fmt.Errorf("%s: %w", o.Device, err)
		}
		return fmt.Errorf("%w: handle 0x%08x: %v", ErrParent, o.Parent, err)
	}
	pp, err := rp.OutPublic.Contents()
	if err != nil {
		return fmt.Errorf("%w: handle 0x%08x: public area: %v", ErrParent, o.Parent, err)
	}
	if a := pp.ObjectAttributes; !a.Restricted || !a.Decrypt || a.SignEncrypt {
		return fmt.Errorf("%w: handle 0x%08x is not a storage key (restricted decrypt)", ErrParent, o.Parent)
	}
	lr, err := run(func() (*tpm2.LoadResponse, error) {
		return tpm2.Load{
			ParentHandle: tpm2.AuthHandle{Handle: parent, Name: rp.Name, Auth: tpm2.PasswordAuth(nil)},
			InPrivate:    tpm2.TPM2BPrivate{Buffer: priv},
			InPublic:     tpm2.New2B(*public),
		}.Execute(k.tpm)
	})
	switch {
	case err == nil:
	case errors.Is(err, ErrDevice):
		return fmt.Errorf("%s: %w", o.Device, err)
	case errors.Is(err, tpm2.TPMRCAuthFail), errors.Is(err, tpm2.TPMRCBadAuth):
		return fmt.Errorf("%w: handle 0x%08x has an authorisation value; only parents without one can be used: %v", ErrParent, o.Parent, err)
	case errors.Is(err, tpm2.TPMRCIntegrity), errors.Is(err, tpm2.TPMRCSize), errors.Is(err, tpm2.TPMRCValue),
		errors.Is(err, tpm2.TPMRCKey), errors.Is(err, tpm2.TPMRCKeySize):
		return fmt.Errorf("%w: %w: the TPM refused %s and %s under parent 0x%08x: created under another parent, or damaged: %v",
			ErrParent, ErrBlob, o.Private, o.Public, o.Parent, err)
	default:
		return fmt.Errorf("%w: loading %s under parent 0x%08x: %v", ErrBlob, o.Private, o.Parent, err)
	}
	k.handle, k.name = lr.ObjectHandle, lr.Name
	return nil
}

// run runs a TPM command, retrying the warnings that ask for it.
func run[R any](f func() (*R, error)) (*R, error) {
	for i := 0; ; i++ {
		r, err := f()
		retry := errors.Is(err, tpm2.TPMRCRetry) || errors.Is(err, tpm2.TPMRCYielded) || errors.Is(err, tpm2.TPMRCTesting)
		if !retry || i == 20 {
			return r, err
		}
		time.Sleep(time.Duration(i+1) * 10 * time.Millisecond)
	}
}

// Public returns the key's *rsa.PublicKey or *ecdsa.PublicKey.
func (k *Key) Public() crypto.PublicKey { return k.info.pub }

// Sign signs digest with the TPM. For RSA keys, *rsa.PSSOptions selects
// RSASSA-PSS (salt as long as the hash, as the TPM makes it), other options
// PKCS #1 v1.5. ECDSA signatures are ASN.1 DER, as crypto.Signer requires.
// rand is not used: the TPM has its own.
func (k *Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h := opts.HashFunc()
	alg, err := hashAlg(h)
	if err != nil {
		return nil, err
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("%w: digest of %d bytes for %v", ErrSign, len(digest), h)
	}
	var scheme tpm2.TPMAlgID
	switch k.info.pub.(type) {
	case *rsa.PublicKey:
		scheme = tpm2.TPMAlgRSASSA
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			if s := pss.SaltLength; s != rsa.PSSSaltLengthEqualsHash && s != rsa.PSSSaltLengthAuto && s != h.Size() {
				return nil, fmt.Errorf("%w: PSS salt length %d (the TPM uses the hash length)", ErrSign, s)
			}
			scheme = tpm2.TPMAlgRSAPSS
		}
	case *ecdsa.PublicKey:
		scheme = tpm2.TPMAlgECDSA
	}
	if k.info.scheme != tpm2.TPMAlgNull && k.info.scheme != scheme {
		return nil, fmt.Errorf("%w: the key only signs with %v, not %v", ErrSign, k.info.scheme, scheme)
	}
	cmd := tpm2.Sign{
		Digest:     tpm2.TPM2BDigest{Buffer: digest},
		InScheme:   tpm2.TPMTSigScheme{Scheme: scheme, Details: tpm2.NewTPMUSigScheme(scheme, &tpm2.TPMSSchemeHash{HashAlg: alg})},
		Validation: tpm2.TPMTTKHashCheck{Tag: tpm2.TPMSTHashCheck, Hierarchy: tpm2.TPMRHNull},
	}
	if k.info.scheme != tpm2.TPMAlgNull { // the key's scheme is fixed: the command must say null
		cmd.InScheme = tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull}
	}
	k.mu.Lock()
	if k.tpm == nil {
		k.mu.Unlock()
		return nil, ErrClosed
	}
	cmd.KeyHandle = tpm2.AuthHandle{Handle: k.handle, Name: k.name, Auth: tpm2.PasswordAuth(nil)}
	rsp, err := run(func() (*tpm2.SignResponse, error) { return cmd.Execute(k.tpm) })
	k.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSign, err)
	}
	return encodeSignature(scheme, &rsp.Signature)
}

// encodeSignature turns the TPM's signature into crypto.Signer's form.
func encodeSignature(scheme tpm2.TPMAlgID, sig *tpm2.TPMTSignature) ([]byte, error) {
	if sig.SigAlg != scheme {
		return nil, fmt.Errorf("%w: asked for %v, got %v", ErrSign, scheme, sig.SigAlg)
	}
	switch scheme {
	case tpm2.TPMAlgRSASSA:
		s, err := sig.Signature.RSASSA()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSign, err)
		}
		return s.Sig.Buffer, nil
	case tpm2.TPMAlgRSAPSS:
		s, err := sig.Signature.RSAPSS()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSign, err)
		}
		return s.Sig.Buffer, nil
	default:
		s, err := sig.Signature.ECDSA()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSign, err)
		}
		return asn1.Marshal(struct{ R, S *big.Int }{
			new(big.Int).SetBytes(s.SignatureR.Buffer), new(big.Int).SetBytes(s.SignatureS.Buffer),
		})
	}
}

func hashAlg(h crypto.Hash) (tpm2.TPMAlgID, error) {
	switch h {
	case crypto.SHA256:
		return tpm2.TPMAlgSHA256, nil
	case crypto.SHA384:
		return tpm2.TPMAlgSHA384, nil
	case crypto.SHA512:
		return tpm2.TPMAlgSHA512, nil
	}
	return 0, fmt.Errorf("%w: hash %v", ErrSign, h)
}

// SignatureSchemes are the TLS signature algorithms to offer for this key
// (tls.Certificate.SupportedSignatureAlgorithms). They are SHA-256 only,
// as upstream's: every TPM 2.0 has SHA-256, not all have SHA-384.
func (k *Key) SignatureSchemes() []tls.SignatureScheme {
	if _, ok := k.info.pub.(*ecdsa.PublicKey); ok {
		return []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256}
	}
	switch k.info.scheme {
	case tpm2.TPMAlgRSASSA:
		return []tls.SignatureScheme{tls.PKCS1WithSHA256}
	case tpm2.TPMAlgRSAPSS:
		return []tls.SignatureScheme{tls.PSSWithSHA256}
	}
	return []tls.SignatureScheme{tls.PSSWithSHA256, tls.PKCS1WithSHA256}
}

// CheckCertificate returns an ErrMismatch error unless cert is for this
// key.
func (k *Key) CheckCertificate(cert *x509.Certificate) error {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if e, ok := cert.PublicKey.(equaler); ok && e.Equal(k.info.pub) {
		return nil
	}
	return fmt.Errorf("%w: certificate %q has another public key", ErrMismatch, cert.Subject.String())
}

// Close flushes the key from the TPM and closes the connection. Signing
// afterwards fails with ErrClosed; closing again does nothing.
func (k *Key) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.tpm == nil {
		return nil
	}
	_, ferr := tpm2.FlushContext{FlushHandle: k.handle}.Execute(k.tpm)
	cerr := k.tpm.Close()
	k.tpm = nil
	if ferr != nil {
		return fmt.Errorf("%w: flushing the key: %v", ErrDevice, ferr)
	}
	if cerr != nil {
		return fmt.Errorf("%w: %v", ErrDevice, cerr)
	}
	return nil
}
