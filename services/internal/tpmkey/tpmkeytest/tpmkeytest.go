// Package tpmkeytest runs a software TPM (swtpm) for a test and provisions
// it with tpm2-tools the way a device maker would: a primary storage key
// persisted at Parent, then child signing keys as tpm2_create blob files.
// The test reaches the TPM through swtpm's server unix socket, which is
// what a connector's tpmDevice then names.
//
// swtpm serves one connection at a time: create the keys (tpm2-tools)
// before a tpmkey.Key holds the socket, and close the Key before running a
// tool again.
package tpmkeytest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kantofw/kanto/internal/testenv"
)

// Parent is the persistent handle of the storage key.
const Parent uint32 = 0x81000001

// TPM is a running swtpm.
type TPM struct {
	Socket string // the server socket: the tpmDevice
	dir    string
	env    []string
}

// Start starts swtpm in a temp folder, creates the primary key and
// persists it at Parent; it is stopped when the test ends. A missing swtpm
// or tpm2-tools fails the test in CI and skips it elsewhere.
func Start(t testing.TB) *TPM {
	t.Helper()
	swtpm := testenv.LookPath(t, "swtpm")
	for _, tool := range []string{"tpm2_createprimary", "tpm2_evictcontrol", "tpm2_create", "tpm2_flushcontext"} {
		testenv.LookPath(t, tool)
	}
	// Unix socket paths are short (108 bytes): t.TempDir may be too long.
	dir, err := os.MkdirTemp("", "swtpm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &TPM{Socket: filepath.Join(dir, "tpm.sock"), dir: dir}
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(swtpm, "socket", "--tpm2",
		"--server", "type=unixio,path="+p.Socket,
		"--ctrl", "type=unixio,path="+p.Socket+".ctrl",
		"--flags", "not-need-init,startup-clear",
		"--tpmstate", "dir="+state,
		"--log", "file="+filepath.Join(dir, "swtpm.log"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("swtpm: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if c, err := net.Dial("unix", p.Socket+".ctrl"); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("swtpm exited: %v (log: %s)", err, p.log())
		case <-ctx.Done():
			t.Fatalf("swtpm did not open %s (log: %s)", p.Socket, p.log())
		case <-time.After(20 * time.Millisecond):
		}
	}
	// The swtpm TCTI (libtss2-tcti-swtpm0) finds the control socket at
	// <path>.ctrl.
	p.env = append(os.Environ(), "TPM2TOOLS_TCTI=swtpm:path="+p.Socket)
	ctxFile := filepath.Join(dir, "primary.ctx")
	p.Tool(t, "tpm2_createprimary", "-C", "o", "-c", ctxFile)
	p.Tool(t, "tpm2_evictcontrol", "-C", "o", "-c", ctxFile, fmt.Sprintf("0x%x", Parent))
	// Without a resource manager the tools leave their transient objects
	// loaded; a TPM has only a few slots.
	p.Tool(t, "tpm2_flushcontext", "-t")
	return p
}

func (p *TPM) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "swtpm.log"))
	return string(b)
}

// Tool runs a tpm2-tools program against this TPM and returns its output.
func (p *TPM) Tool(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// CreateKey makes a child signing key of Parent with tpm2_create -G alg
// (rsa2048, ecc256, ...) and returns the blob files (private, public).
func (p *TPM) CreateKey(t testing.TB, name, alg string) (priv, pub string) {
	t.Helper()
	priv = filepath.Join(p.dir, name+".priv")
	pub = filepath.Join(p.dir, name+".pub")
	p.Tool(t, "tpm2_create", "-C", fmt.Sprintf("0x%x", Parent), "-G", alg, "-u", pub, "-r", priv)
	return priv, pub
}

// Settings sets the upstream TPM keys (tpmDevice, tpmHandle, tpmKey,
// tpmKeyPub) of a service's JSON settings to this TPM and key pair.
func (p *TPM) Settings(m map[string]any, priv, pub string) {
	m["tpmDevice"], m["tpmHandle"], m["tpmKey"], m["tpmKeyPub"] = p.Socket, Parent, priv, pub
}

// CA is a test certificate authority.
type CA struct {
	File string // PEM
	Pool *x509.CertPool
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
	n    int64
}

// NewCA makes a CA and writes its certificate to a temp folder.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "TPM test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &CA{Pool: x509.NewCertPool(), cert: cert, key: key, dir: t.TempDir(), n: 1}
	ca.Pool.AddCert(cert)
	ca.File = ca.write(t, "ca.crt", "CERTIFICATE", der)
	return ca
}

func (ca *CA) write(t testing.TB, name, typ string, der []byte) string {
	t.Helper()
	f := filepath.Join(ca.dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// Client issues a client certificate with common name cn for pub and
// returns its PEM file and parsed form.
func (ca *CA) Client(t testing.TB, cn string, pub crypto.PublicKey) (string, *x509.Certificate) {
	t.Helper()
	der := ca.issue(t, cn, pub, false)
	cert, _ := x509.ParseCertificate(der)
	return ca.write(t, fmt.Sprintf("client-%d.crt", ca.n), "CERTIFICATE", der), cert
}

// ClientFromCSR issues a client certificate for a PEM or DER certificate
// request (made with the device's own signer) after checking its
// signature, as a real CA would.
func (ca *CA) ClientFromCSR(t testing.TB, csrDER []byte) (string, *x509.Certificate) {
	t.Helper()
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatalf("CSR signature: %v", err)
	}
	return ca.Client(t, csr.Subject.CommonName, csr.PublicKey)
}

// Server issues a server certificate for 127.0.0.1 and localhost, as PEM
// files (for Mosquitto) and as a tls.Certificate (for Go servers).
func (ca *CA) Server(t testing.TB) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der := ca.issue(t, "localhost", &key.PublicKey, true)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile = ca.write(t, fmt.Sprintf("server-%d.crt", ca.n), "CERTIFICATE", der)
	keyFile = ca.write(t, fmt.Sprintf("server-%d.key", ca.n), "EC PRIVATE KEY", keyDER)
	return certFile, keyFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (ca *CA) issue(t testing.TB, cn string, pub crypto.PublicKey, server bool) []byte {
	t.Helper()
	ca.n++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.n), Subject: pkix.Name{CommonName: cn, Organization: []string{"Kanto Test"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
