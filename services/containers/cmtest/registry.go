package cmtest

import (
	"bytes"
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
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/kantofw/kanto/internal/testenv"
)

// Registry is a Debian docker-registry on loopback.
type Registry struct {
	Host       string // 127.0.0.1:port
	CA         string // CA certificate file (TLS only)
	User, Pass string // basic auth (empty: none)
	client     *http.Client
	scheme     string
}

// RegistryOptions choose TLS and basic auth.
type RegistryOptions struct {
	TLS        bool
	User, Pass string
}

// StartRegistry runs docker-registry in dir until the test ends.
func StartRegistry(t testing.TB, dir string, o RegistryOptions) *Registry {
	t.Helper()
	bin := testenv.LookPath(t, "docker-registry")
	port := testenv.FreePort(t)
	r := &Registry{Host: fmt.Sprintf("127.0.0.1:%d", port), User: o.User, Pass: o.Pass, scheme: "http"}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), r.Host)
	tr := &http.Transport{}
	if o.TLS {
		ca, crt, key, pool := makeCerts(t, dir)
		r.CA, r.scheme = ca, "https"
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", crt, key)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if o.User != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(o.Pass), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htp := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htp, []byte(o.User+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: kanto-test\n    path: %s\n", htp)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	log, _ := os.Create(filepath.Join(dir, "registry.log"))
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); log.Close() })
	r.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := r.do("GET", "/v2/", nil, "")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("registry did not start: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return r
}

func (r *Registry) do(method, path string, body []byte, ctype string) (*http.Response, error) {
	url := path
	if !strings.HasPrefix(path, "http") {
		url = r.scheme + "://" + r.Host + path
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if r.User != "" {
		req.SetBasicAuth(r.User, r.Pass)
	}
	return r.client.Do(req)
}

// Push uploads img as repo:tag and returns the full reference.
func (r *Registry) Push(img *Image, repo, tag string) (string, error) {
	for _, b := range []Blob{img.Layer, img.Config} {
		resp, err := r.do("POST", "/v2/"+repo+"/blobs/uploads/", nil, "")
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			return "", fmt.Errorf("start upload: %s", resp.Status)
		}
		loc := resp.Header.Get("Location")
		if !strings.HasPrefix(loc, "http") {
			loc = r.scheme + "://" + r.Host + loc
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		resp, err = r.do("PUT", loc+sep+"digest="+b.Digest(), b.Data, "application/octet-stream")
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return "", fmt.Errorf("upload blob: %s", resp.Status)
		}
	}
	resp, err := r.do("PUT", "/v2/"+repo+"/manifests/"+tag, img.Manifest.Data, img.Manifest.MediaType)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("put manifest: %s", resp.Status)
	}
	return r.Host + "/" + repo + ":" + tag, nil
}

// makeCerts writes a CA and a server certificate for 127.0.0.1.
func makeCerts(t testing.TB, dir string) (caFile, crtFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kanto test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	caFile, crtFile, keyFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "server.cert"), filepath.Join(dir, "server.key")
	for f, b := range map[string][]byte{
		caFile:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		crtFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		keyFile: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool = x509.NewCertPool()
	pool.AddCert(caCert)
	return caFile, crtFile, keyFile, pool
}
