package tpmkey_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kantofw/kanto/services/internal/tpmkey"
	"github.com/kantofw/kanto/services/internal/tpmkey/tpmkeytest"
)

func open(t *testing.T, tpm *tpmkeytest.TPM, priv, pub string) *tpmkey.Key {
	t.Helper()
	k, err := tpmkey.Open(tpmkey.Options{Device: tpm.Socket, Parent: tpmkeytest.Parent, Private: priv, Public: pub})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// transient lists the TPM's loaded transient objects (tpm2_getcap).
func transient(t *testing.T, tpm *tpmkeytest.TPM) string {
	return strings.TrimSpace(tpm.Tool(t, "tpm2_getcap", "handles-transient"))
}

func TestSign(t *testing.T) {
	tpm := tpmkeytest.Start(t)
	rsaPriv, rsaPub := tpm.CreateKey(t, "rsa", "rsa2048")
	ecPriv, ecPub := tpm.CreateKey(t, "ecc", "ecc256")
	digest := sha256.Sum256([]byte("handshake transcript"))

	t.Run("rsa", func(t *testing.T) {
		k := open(t, tpm, rsaPriv, rsaPub)
		defer k.Close()
		pub, ok := k.Public().(*rsa.PublicKey)
		if !ok {
			t.Fatalf("public key %T, want RSA", k.Public())
		}
		sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			t.Errorf("PKCS #1 v1.5: %v", err)
		}
		// TLS 1.3 verifies PSS with the salt as long as the hash.
		opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
		sig, err = k.Sign(rand.Reader, digest[:], opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, opts); err != nil {
			t.Errorf("PSS: %v", err)
		}
		if _, err := k.Sign(rand.Reader, digest[:], &rsa.PSSOptions{SaltLength: 7, Hash: crypto.SHA256}); !errors.Is(err, tpmkey.ErrSign) {
			t.Errorf("salt length 7: %v, want ErrSign", err)
		}
		if _, err := k.Sign(rand.Reader, digest[:16], crypto.SHA256); !errors.Is(err, tpmkey.ErrSign) {
			t.Errorf("short digest: %v, want ErrSign", err)
		}
	})

	t.Run("ecc", func(t *testing.T) {
		k := open(t, tpm, ecPriv, ecPub)
		defer k.Close()
		pub, ok := k.Public().(*ecdsa.PublicKey)
		if !ok {
			t.Fatalf("public key %T, want ECDSA", k.Public())
		}
		sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(pub, digest[:], sig) {
			t.Error("ECDSA signature does not verify")
		}
	})

	t.Run("csr", func(t *testing.T) {
		// A device asks for its certificate with a CSR the TPM signs.
		k := open(t, tpm, ecPriv, ecPub)
		defer k.Close()
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ns:dev"}}, k)
		if err != nil {
			t.Fatal(err)
		}
		ca := tpmkeytest.NewCA(t)
		_, cert := ca.ClientFromCSR(t, der)
		if err := k.CheckCertificate(cert); err != nil {
			t.Error(err)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		k := open(t, tpm, ecPriv, ecPub)
		defer k.Close()
		pub := k.Public().(*ecdsa.PublicKey)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				for range 4 {
					sig, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
					if err == nil && !ecdsa.VerifyASN1(pub, digest[:], sig) {
						err = errors.New("bad signature")
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("close", func(t *testing.T) {
		k := open(t, tpm, ecPriv, ecPub)
		if err := k.Close(); err != nil {
			t.Fatal(err)
		}
		if err := k.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := k.Sign(rand.Reader, digest[:], crypto.SHA256); !errors.Is(err, tpmkey.ErrClosed) {
			t.Errorf("Sign after Close: %v, want ErrClosed", err)
		}
		// Close flushed the key: nothing stays in the TPM's few slots.
		if got := transient(t, tpm); got != "" {
			t.Errorf("transient objects after Close: %s", got)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	tpm := tpmkeytest.Start(t)
	priv, pub := tpm.CreateKey(t, "rsa", "rsa2048")
	// Another storage key, persisted too: the blobs were not made under it.
	ctx := filepath.Join(t.TempDir(), "other.ctx")
	tpm.Tool(t, "tpm2_createprimary", "-C", "o", "-G", "ecc", "-c", ctx)
	tpm.Tool(t, "tpm2_evictcontrol", "-C", "o", "-c", ctx, "0x81000002")
	tpm.Tool(t, "tpm2_flushcontext", "-t")
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	privData, _ := os.ReadFile(priv)
	pubData, _ := os.ReadFile(pub)
	flipped := append([]byte(nil), privData...)
	flipped[len(flipped)/2] ^= 0x5a
	flippedPub := append([]byte(nil), pubData...)
	flippedPub[len(flippedPub)-10] ^= 0x5a // in the modulus: another key
	notTPM := filepath.Join(dir, "nottpm.sock")
	l, err := net.Listen("unix", notTPM)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			_, _ = c.Read(buf)
			_, _ = c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()

	ok := tpmkey.Options{Device: tpm.Socket, Parent: tpmkeytest.Parent, Private: priv, Public: pub}
	for _, tc := range []struct {
		name  string
		edit  func(*tpmkey.Options)
		wants []error
	}{
		{"no such device", func(o *tpmkey.Options) { o.Device = "/dev/tpm-none" }, []error{tpmkey.ErrDevice}},
		{"regular file as device", func(o *tpmkey.Options) { o.Device = pub }, []error{tpmkey.ErrDevice}},
		{"not a TPM", func(o *tpmkey.Options) { o.Device = notTPM }, []error{tpmkey.ErrDevice}},
		{"a character device that is not a TPM", func(o *tpmkey.Options) { o.Device = "/dev/null" }, []error{tpmkey.ErrDevice}},
		{"no parent handle", func(o *tpmkey.Options) { o.Parent = 0 }, []error{tpmkey.ErrParent}},
		{"empty parent handle", func(o *tpmkey.Options) { o.Parent = 0x81000003 }, []error{tpmkey.ErrParent}},
		{"the owner hierarchy as parent", func(o *tpmkey.Options) { o.Parent = 0x40000001 }, []error{tpmkey.ErrParent}},
		{"another parent", func(o *tpmkey.Options) { o.Parent = 0x81000002 }, []error{tpmkey.ErrParent}},
		{"missing private blob", func(o *tpmkey.Options) { o.Private = filepath.Join(dir, "none") }, []error{tpmkey.ErrBlob}},
		{"truncated private blob", func(o *tpmkey.Options) { o.Private = write("short.priv", privData[:40]) }, []error{tpmkey.ErrBlob}},
		{"damaged private blob", func(o *tpmkey.Options) { o.Private = write("flip.priv", flipped) }, []error{tpmkey.ErrBlob}},
		{"damaged public blob", func(o *tpmkey.Options) { o.Public = write("flip.pub", flippedPub) }, []error{tpmkey.ErrBlob}},
		{"public blob not TPM2B", func(o *tpmkey.Options) { o.Public = write("pem.pub", []byte("-----BEGIN PUBLIC KEY-----\n")) }, []error{tpmkey.ErrBlob}},
		{"blobs swapped", func(o *tpmkey.Options) { o.Private, o.Public = pub, priv }, []error{tpmkey.ErrBlob}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			k, err := tpmkey.Open(o)
			if err == nil {
				k.Close()
				t.Fatal("opened")
			}
			for _, want := range tc.wants {
				if !errors.Is(err, want) {
					t.Errorf("error %q is not %q", err, want)
				}
			}
			t.Logf("%v", err)
		})
	}
	// Every failed Open left the TPM as it found it.
	if got := transient(t, tpm); got != "" {
		t.Errorf("transient objects after failed opens: %s", got)
	}
	// And the good options still work after all that.
	k := open(t, tpm, priv, pub)
	k.Close()
}

func TestCheckCertificate(t *testing.T) {
	tpm := tpmkeytest.Start(t)
	priv, pub := tpm.CreateKey(t, "ecc", "ecc256")
	otherPriv, otherPub := tpm.CreateKey(t, "other", "ecc256")
	ca := tpmkeytest.NewCA(t)
	other := open(t, tpm, otherPriv, otherPub)
	_, otherCert := ca.Client(t, "ns:other", other.Public())
	other.Close()
	k := open(t, tpm, priv, pub)
	defer k.Close()
	_, cert := ca.Client(t, "ns:dev", k.Public())
	if err := k.CheckCertificate(cert); err != nil {
		t.Errorf("own certificate: %v", err)
	}
	err := k.CheckCertificate(otherCert)
	if !errors.Is(err, tpmkey.ErrMismatch) {
		t.Errorf("another key's certificate: %v, want ErrMismatch", err)
	}
	t.Log(err)
}

// Keys with a fixed signing scheme sign with it, and offer TLS only that.
func TestFixedScheme(t *testing.T) {
	tpm := tpmkeytest.Start(t)
	digest := sha256.Sum256([]byte("x"))
	for _, tc := range []struct {
		alg    string
		opts   crypto.SignerOpts
		scheme tls.SignatureScheme
	}{
		{"rsa2048:rsassa-sha256", crypto.SHA256, tls.PKCS1WithSHA256},
		{"rsa2048:rsapss-sha256:null", &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}, tls.PSSWithSHA256},
		{"ecc256:ecdsa-sha256", crypto.SHA256, tls.ECDSAWithP256AndSHA256},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			// A signing-only key: with decrypt as well, the scheme must be null.
			dir := t.TempDir()
			priv, pub := filepath.Join(dir, "k.priv"), filepath.Join(dir, "k.pub")
			tpm.Tool(t, "tpm2_create", "-C", "0x81000001", "-G", tc.alg, "-u", pub, "-r", priv,
				"-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign")
			k := open(t, tpm, priv, pub)
			defer k.Close()
			if got := k.SignatureSchemes(); len(got) != 1 || got[0] != tc.scheme {
				t.Errorf("signature schemes %v, want %v", got, tc.scheme)
			}
			if _, err := k.Sign(rand.Reader, digest[:], tc.opts); err != nil {
				t.Error(err)
			}
		})
	}
}

// A key with an authorisation value cannot be used (upstream passes an
// empty one too); Open says so instead of the first handshake failing.
func TestKeyWithAuthValue(t *testing.T) {
	tpm := tpmkeytest.Start(t)
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "k.priv"), filepath.Join(dir, "k.pub")
	tpm.Tool(t, "tpm2_create", "-C", "0x81000001", "-G", "ecc256", "-p", "secret", "-u", pub, "-r", priv)
	k, err := tpmkey.Open(tpmkey.Options{Device: tpm.Socket, Parent: tpmkeytest.Parent, Private: priv, Public: pub})
	if err == nil {
		k.Close()
		t.Fatal("opened")
	}
	if !errors.Is(err, tpmkey.ErrUnsupported) {
		t.Errorf("%v, want ErrUnsupported", err)
	}
	t.Log(err)
	if got := transient(t, tpm); got != "" {
		t.Errorf("transient objects after a failed open: %s", got)
	}
}
