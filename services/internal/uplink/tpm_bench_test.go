package uplink

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/kantofw/kanto/services/internal/tpmkey"
	"github.com/kantofw/kanto/services/internal/tpmkey/tpmkeytest"
)

// BenchmarkHubHandshake is a full mutual-TLS 1.3 handshake against an
// in-process server, the client signing with a key file or with the same
// kind of key in a TPM (swtpm), measured in the same run.
func BenchmarkHubHandshake(b *testing.B) {
	tpm := tpmkeytest.Start(b)
	ca := tpmkeytest.NewCA(b)
	_, _, serverPair := ca.Server(b)
	dir := b.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	srv := &tls.Config{Certificates: []tls.Certificate{serverPair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool}
	go func() { // ends when l closes
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = tls.Server(c, srv).Handshake()
			}()
		}
	}()
	handshakes := func(b *testing.B, cfg *tls.Config) {
		for b.Loop() {
			c, err := tls.Dial("tcp", l.Addr().String(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	}
	for _, alg := range []string{"ecc256", "rsa2048"} {
		// The key file.
		var pub any
		var keyDER []byte
		var keyType string
		if alg == "ecc256" {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			pub, keyType = &k.PublicKey, "EC PRIVATE KEY"
			keyDER, _ = x509.MarshalECPrivateKey(k)
		} else {
			k, _ := rsa.GenerateKey(rand.Reader, 2048)
			pub, keyType = &k.PublicKey, "RSA PRIVATE KEY"
			keyDER = x509.MarshalPKCS1PrivateKey(k)
		}
		keyFile := filepath.Join(dir, alg+".key")
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: keyType, Bytes: keyDER}), 0o600); err != nil {
			b.Fatal(err)
		}
		certFile, _ := ca.Client(b, "ns:file", pub)
		b.Run("file/"+alg, func(b *testing.B) {
			cfg, _, err := HubTLS(ca.File, certFile, keyFile, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			handshakes(b, cfg)
		})

		// The same kind of key in the TPM.
		priv, tpub := tpm.CreateKey(b, alg, alg)
		k, err := tpmkey.Open(tpmkey.Options{Device: tpm.Socket, Parent: tpmkeytest.Parent, Private: priv, Public: tpub})
		if err != nil {
			b.Fatal(err)
		}
		tpmCert, _ := ca.Client(b, "ns:tpm", k.Public())
		k.Close()
		s := TPMSettings{TPMDevice: tpm.Socket, TPMHandle: uint64(tpmkeytest.Parent), TPMKey: priv, TPMKeyPub: tpub}
		b.Run("tpm/"+alg, func(b *testing.B) {
			key, err := s.Open(tpmCert, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer key.Close()
			cfg, _, err := HubTLS(ca.File, tpmCert, "", key, nil)
			if err != nil {
				b.Fatal(err)
			}
			handshakes(b, cfg)
		})
	}
}
