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
	Host string // 127.0.0.1:port
	CA   string // CA certificate file (TLS only)
	// ClientCert and ClientKey are a client certificate the registry
	// requires (RegistryOptions.ClientAuth).
	ClientCert, ClientKey string
	User, Pass            string // basic auth (empty: none)
	client                *http.Client
	scheme                string
}

// RegistryOptions choose TLS and basic auth.
type RegistryOptions struct {
	TLS        bool
	User, Pass string
	// ClientAuth makes the registry require a client certificate signed
	// by its CA (implies TLS).
	ClientAuth bool
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
	if o.TLS || o.ClientAuth {
		certs := makeCerts(t, dir)
		r.CA, r.scheme = certs.ca, "https"
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", certs.crt, certs.key)
		tr.TLSClientConfig = &tls.Config{RootCAs: certs.pool, MinVersion: tls.VersionTLS12}
		if o.ClientAuth {
			cfg += fmt.Sprintf("    clientcas:\n      - %s\n", certs.ca)
			r.ClientCert, r.ClientKey = certs.clientCrt, certs.clientKey
			pair, err := tls.LoadX509KeyPair(certs.clientCrt, certs.clientKey)
			if err != nil {
				t.Fatal(err)
			}
			tr.TLSClientConfig.Certificates = []tls.Certificate{pair}
		}
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

type certFiles struct {
	ca, crt, key, clientCrt, clientKey string
	pool                               *x509.CertPool
}

// makeCerts writes a CA, a server certificate for 127.0.0.1 and a client
// certificate.
func makeCerts(t testing.TB, dir string) certFiles {
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
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			IPAddresses: ips, ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	}
	srvCrt, srvKey := leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	cliCrt, cliKey := leaf(3, "kanto device", x509.ExtKeyUsageClientAuth, nil)
	f := certFiles{
		ca: filepath.Join(dir, "ca.crt"), crt: filepath.Join(dir, "server.cert"), key: filepath.Join(dir, "server.key"),
		clientCrt: filepath.Join(dir, "client.cert"), clientKey: filepath.Join(dir, "client.key"),
	}
	for p, b := range map[string][]byte{
		f.ca:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		f.crt: srvCrt, f.key: srvKey, f.clientCrt: cliCrt, f.clientKey: cliKey,
	} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f.pool = x509.NewCertPool()
	f.pool.AddCert(caCert)
	return f
}
