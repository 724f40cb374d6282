package bundle_test

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/firmware/bundle/bundletest"
)

// readAll opens b and reads every image; it returns what each image
// yielded (even on error) and the first error.
func readAll(b []byte, opts bundle.VerifyOptions) (map[string][]byte, error) {
	got := map[string][]byte{}
	r, err := bundle.Open(bytes.NewReader(b), opts)
	if err != nil {
		return got, err
	}
	for {
		im, ir, err := r.Next()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		var buf bytes.Buffer
		_, err = io.Copy(&buf, ir)
		got[im.Class] = buf.Bytes()
		if err != nil {
			return got, err
		}
	}
}

func TestRoundTrip(t *testing.T) {
	images := map[string][]byte{"rootfs": bundletest.Image(300<<10+17, 1), "boot": bytes.Repeat([]byte("kernel"), 40000)}
	for _, alg := range []string{"ed25519", "ecdsa", "rsa"} {
		pki := bundletest.NewPKI(t, alg)
		for _, comp := range []string{"none", "gzip", "zstd"} {
			t.Run(alg+"/"+comp, func(t *testing.T) {
				b := bundletest.Build(t, pki.Signer(), images, bundletest.Options{Compression: comp})
				got, err := readAll(b, bundle.VerifyOptions{Keyring: pki.Keyring, Compatible: "test-board"})
				if err != nil {
					t.Fatal(err)
				}
				for c, want := range images {
					if !bytes.Equal(got[c], want) {
						t.Fatalf("image %s: %d bytes, want %d", c, len(got[c]), len(want))
					}
				}
			})
		}
	}
}

func TestRawEd25519Key(t *testing.T) {
	key, _ := bundle.GenerateKey("ed25519")
	pub, _ := bundle.PEMPublicKey(key.Public())
	kr, err := bundle.ParseKeyring(pub)
	if err != nil {
		t.Fatal(err)
	}
	b := bundletest.Build(t, &bundle.KeySigner{Key: key}, map[string][]byte{"rootfs": bundletest.Image(1000, 2)}, bundletest.Options{})
	if _, err := readAll(b, bundle.VerifyOptions{Keyring: kr}); err != nil {
		t.Fatal(err)
	}
	other, _ := bundle.GenerateKey("ed25519")
	pub2, _ := bundle.PEMPublicKey(other.Public())
	kr2, _ := bundle.ParseKeyring(pub2)
	if _, err := readAll(b, bundle.VerifyOptions{Keyring: kr2}); !errors.Is(err, bundle.ErrUntrusted) {
		t.Fatalf("unknown raw key: %v", err)
	}
}

// countingReader records how far the consumer read.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestTamper flips bytes everywhere: header, manifest, signature block and
// payload. Every flip must be rejected; a flip in the header must be
// rejected before any payload byte is read, and a flip in a payload must
// never let a byte of the corrupt chunk (or later) out.
func TestTamper(t *testing.T) {
	pki := bundletest.NewPKI(t, "ecdsa")
	img := bundletest.Image(256<<10, 3) // 4 chunks of 64 KiB
	for _, comp := range []string{"none", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			good := bundletest.Build(t, pki.Signer(), map[string][]byte{"rootfs": img}, bundletest.Options{Compression: comp})
			h, err := bundle.ReadHeader(bytes.NewReader(good))
			if err != nil {
				t.Fatal(err)
			}
			var positions []int64
			for i := int64(0); i < h.Size; i += 7 {
				positions = append(positions, i)
			}
			for i := h.Size; i < int64(len(good)); i += 4099 {
				positions = append(positions, i)
			}
			positions = append(positions, int64(len(good)-1))
			for _, pos := range positions {
				bad := bytes.Clone(good)
				bad[pos] ^= 0x01
				cr := &countingReader{r: bytes.NewReader(bad)}
				r, err := bundle.Open(cr, bundle.VerifyOptions{Keyring: pki.Keyring})
				if pos < h.Size {
					if err == nil {
						// A flip in JSON whitespace of the signature block can be harmless only if
						// the signature still verifies; that must not happen for the manifest.
						if pos >= 12 && pos < 12+int64(len(h.RawManifest)) {
							t.Fatalf("flip at %d in manifest accepted", pos)
						}
						if _, err := readAll(bad, bundle.VerifyOptions{Keyring: pki.Keyring}); err != nil {
							t.Fatalf("flip at %d in signature block: open ok, read %v", pos, err)
						}
						continue
					}
					if cr.n > h.Size {
						t.Fatalf("flip at %d: read %d bytes (header %d) before rejecting", pos, cr.n, h.Size)
					}
					continue
				}
				if err != nil {
					t.Fatalf("flip at %d (payload): open: %v", pos, err)
				}
				_, ir, err := r.Next()
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				_, err = io.Copy(&out, ir)
				if !errors.Is(err, bundle.ErrCorrupt) {
					t.Fatalf("flip at %d (payload): %v, want ErrCorrupt", pos, err)
				}
				if comp == "none" {
					chunk := (pos - h.Size) / (64 << 10)
					if int64(out.Len()) > chunk*(64<<10) || !bytes.Equal(out.Bytes(), img[:out.Len()]) {
						t.Fatalf("flip at %d in chunk %d: %d bytes came out", pos, chunk, out.Len())
					}
				}
			}
		})
	}
}

func TestRejections(t *testing.T) {
	pki := bundletest.NewPKI(t, "ecdsa")
	img := map[string][]byte{"rootfs": bundletest.Image(100<<10, 4)}
	good := bundletest.Build(t, pki.Signer(), img, bundletest.Options{})
	now := time.Now()

	expiredCert, err := bundle.IssueCert(bundle.CertTemplate{CommonName: "expired", NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}, pki.Key.Public(), pki.CA, pki.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	noCodeSign, _ := bundle.IssueCert(bundle.CertTemplate{CommonName: "tls", NoCodeSigning: true, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}, pki.Key.Public(), pki.CA, pki.CAKey)
	other := bundletest.NewPKI(t, "ecdsa")
	// A signer certificate from another CA, and a self-signed one.
	selfSigned, _ := bundle.IssueCert(bundle.CertTemplate{CommonName: "self", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}, pki.Key.Public(), nil, pki.Key)
	wrongKey, _ := bundle.GenerateKey("ecdsa")

	sign := func(s *bundle.KeySigner) []byte { return bundletest.Build(t, s, img, bundletest.Options{}) }
	for _, tc := range []struct {
		name string
		b    []byte
		opts bundle.VerifyOptions
		want error
	}{
		{"expired certificate", sign(&bundle.KeySigner{Key: pki.Key, Chain: []*x509.Certificate{expiredCert}}), bundle.VerifyOptions{Keyring: pki.Keyring}, bundle.ErrUntrusted},
		{"not yet valid (clock)", good, bundle.VerifyOptions{Keyring: pki.Keyring, Now: now.Add(-48 * time.Hour)}, bundle.ErrUntrusted},
		{"no code signing usage", sign(&bundle.KeySigner{Key: pki.Key, Chain: []*x509.Certificate{noCodeSign}}), bundle.VerifyOptions{Keyring: pki.Keyring}, bundle.ErrUntrusted},
		{"other CA", good, bundle.VerifyOptions{Keyring: other.Keyring}, bundle.ErrUntrusted},
		{"self-signed signer", sign(&bundle.KeySigner{Key: pki.Key, Chain: []*x509.Certificate{selfSigned}}), bundle.VerifyOptions{Keyring: pki.Keyring}, bundle.ErrUntrusted},
		{"key does not match certificate", sign(&bundle.KeySigner{Key: wrongKey, Chain: []*x509.Certificate{pki.Cert}}), bundle.VerifyOptions{Keyring: pki.Keyring}, bundle.ErrSignature},
		{"raw key not in keyring", sign(&bundle.KeySigner{Key: pki.Key}), bundle.VerifyOptions{Keyring: pki.Keyring}, bundle.ErrUntrusted},
		{"no keyring", good, bundle.VerifyOptions{}, bundle.ErrUntrusted},
		{"wrong board", good, bundle.VerifyOptions{Keyring: pki.Keyring, Compatible: "raspberrypi4-64"}, bundle.ErrIncompatible},
		{"truncated header", good[:30], bundle.VerifyOptions{Keyring: pki.Keyring}, bundle.ErrTruncated},
		{"truncated payload", good[:len(good)-1000], bundle.VerifyOptions{Keyring: pki.Keyring}, bundle.ErrTruncated},
		{"trailing data", append(bytes.Clone(good), 0), bundle.VerifyOptions{Keyring: pki.Keyring}, bundle.ErrTrailing},
		{"not a bundle", []byte("PK\x03\x04 this is a zip file, not a bundle"), bundle.VerifyOptions{Keyring: pki.Keyring}, bundle.ErrFormat},
		{"huge manifest length", append([]byte(bundle.Magic), binary.BigEndian.AppendUint32(nil, 1<<31)...), bundle.VerifyOptions{Keyring: pki.Keyring}, bundle.ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readAll(tc.b, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestIntermediateCA checks a chain CA → intermediate → signer, with the
// intermediate carried in the signature block.
func TestIntermediateCA(t *testing.T) {
	pki := bundletest.NewPKI(t, "rsa")
	now := time.Now()
	ik, _ := bundle.GenerateKey("ecdsa")
	inter, err := bundle.IssueCert(bundle.CertTemplate{CommonName: "intermediate", CA: true, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}, ik.Public(), pki.CA, pki.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := bundle.GenerateKey("ed25519")
	leaf, _ := bundle.IssueCert(bundle.CertTemplate{CommonName: "leaf", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}, key.Public(), inter, ik)
	b := bundletest.Build(t, &bundle.KeySigner{Key: key, Chain: []*x509.Certificate{leaf, inter}}, map[string][]byte{"rootfs": []byte("x")}, bundletest.Options{})
	if _, err := readAll(b, bundle.VerifyOptions{Keyring: pki.Keyring}); err != nil {
		t.Fatal(err)
	}
	// Without the intermediate the chain does not build.
	b = bundletest.Build(t, &bundle.KeySigner{Key: key, Chain: []*x509.Certificate{leaf}}, map[string][]byte{"rootfs": []byte("x")}, bundletest.Options{})
	if _, err := readAll(b, bundle.VerifyOptions{Keyring: pki.Keyring}); !errors.Is(err, bundle.ErrUntrusted) {
		t.Fatalf("missing intermediate: %v", err)
	}
}

func TestDevPKI(t *testing.T) {
	dir := t.TempDir()
	if err := bundle.GenerateDevPKI(dir, "ed25519", time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := bundle.LoadKeySigner(filepath.Join(dir, "signing.key"), filepath.Join(dir, "signing.crt"))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := bundle.LoadKeyring(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	b := bundletest.Build(t, s, map[string][]byte{"rootfs": []byte("hello")}, bundletest.Options{})
	if _, err := readAll(b, bundle.VerifyOptions{Keyring: kr}); err != nil {
		t.Fatal(err)
	}
}

func TestManifestValidate(t *testing.T) {
	base := func() bundle.Manifest {
		h := fmt.Sprintf("%064x", 1)
		return bundle.Manifest{Format: 1, Compatible: []string{"b"}, Version: "1", Images: []bundle.Image{{Class: "rootfs", Size: 10, SHA256: h, Compression: "none", StoredSize: 10, ChunkSize: 4096, Chunks: []string{h}}}}
	}
	for _, tc := range []struct {
		name string
		mod  func(m *bundle.Manifest)
	}{
		{"format 2", func(m *bundle.Manifest) { m.Format = 2 }},
		{"no compatible", func(m *bundle.Manifest) { m.Compatible = nil }},
		{"no images", func(m *bundle.Manifest) { m.Images = nil }},
		{"duplicate class", func(m *bundle.Manifest) { m.Images = append(m.Images, m.Images[0]) }},
		{"chunk count", func(m *bundle.Manifest) { m.Images[0].Chunks = nil }},
		{"chunk size", func(m *bundle.Manifest) { m.Images[0].ChunkSize = 5000 }},
		{"uncompressed size mismatch", func(m *bundle.Manifest) { m.Images[0].StoredSize = 11 }},
		{"upper-case hash", func(m *bundle.Manifest) { m.Images[0].SHA256 = fmt.Sprintf("%064X", 10) }},
		{"compression", func(m *bundle.Manifest) { m.Images[0].Compression = "lzma" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			if err := m.Validate(); err != nil {
				t.Fatalf("base: %v", err)
			}
			tc.mod(&m)
			if err := m.Validate(); !errors.Is(err, bundle.ErrFormat) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "manifest-*.json"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := bundle.ParseManifest(data)
		if err != nil {
			if !errors.Is(err, bundle.ErrFormat) {
				t.Fatalf("error outside ErrFormat: %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("parsed manifest does not validate: %v", err)
		}
	})
}

func FuzzReadHeader(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "bundle-*.kfw"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := bundle.ReadHeader(bytes.NewReader(data))
		if err == nil && h.Size > int64(len(data)) {
			t.Fatalf("header size %d beyond %d bytes", h.Size, len(data))
		}
	})
}
