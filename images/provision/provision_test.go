package provision

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func readPEM(t *testing.T, p string) *pem.Block {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", p)
	}
	return blk
}

func TestHonoSelfSigned(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	id, err := Write(dir, Options{Serial: "SN0001", Address: "mqtts://10.0.2.2:8883", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if id.DeviceID != "org.eclipse.kanto:SN0001" || id.TenantID != "kanto" || len(id.KeyID) != 64 {
		t.Errorf("identity = %+v", id)
	}
	key, err := x509.ParsePKCS8PrivateKey(readPEM(t, filepath.Join(dir, "device.key")).Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		t.Fatalf("key is %T, want ECDSA P-256", key)
	}
	cert, err := x509.ParseCertificate(readPEM(t, filepath.Join(dir, "device.crt")).Bytes)
	if err != nil {
		t.Fatal(err)
	}
	selfSig := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature)
	if cert.Subject.CommonName != id.DeviceID || selfSig != nil {
		t.Errorf("certificate CN %q, self-signature %v", cert.Subject.CommonName, selfSig)
	}
	csr, err := x509.ParseCertificateRequest(readPEM(t, filepath.Join(dir, "device.csr")).Bytes)
	if err != nil || csr.CheckSignature() != nil {
		t.Errorf("CSR: %v", err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "device.key")); st.Mode().Perm() != 0o600 {
		t.Errorf("device.key mode %v", st.Mode())
	}
	var prov struct {
		Hub struct {
			Credentials struct {
				DeviceID, TenantID, AuthID string
				Adapters                   []struct{ Type, URI, Port string }
				Secrets                    []struct{ Password string }
			}
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "provisioning.json"))
	if err := json.Unmarshal(b, &prov); err != nil {
		t.Fatal(err)
	}
	c := prov.Hub.Credentials
	if c.DeviceID != id.DeviceID || c.AuthID != "org.eclipse.kanto_SN0001" || len(c.Adapters) != 1 ||
		c.Adapters[0].URI != "mqtts://10.0.2.2" || c.Adapters[0].Port != "8883" || len(c.Secrets) != 1 || c.Secrets[0].Password == "" {
		t.Errorf("provisioning.json credentials = %+v", c)
	}
}

func TestIssuedByFactoryCA(t *testing.T) {
	ca := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "factory CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(caKey)
	os.WriteFile(filepath.Join(ca, "device.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(ca, "device.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	dir := t.TempDir()
	if _, err := Write(dir, Options{Cloud: CloudAWS, DeviceID: "acme:dev-7", Address: "mqtts://abc.iot.example.com:8883",
		IssuerCert: filepath.Join(ca, "device.crt"), IssuerKey: filepath.Join(ca, "device.key")}); err != nil {
		t.Fatal(err)
	}
	issuer, _ := x509.ParseCertificate(readPEM(t, filepath.Join(ca, "device.crt")).Bytes)
	cert, _ := x509.ParseCertificate(readPEM(t, filepath.Join(dir, "device.crt")).Bytes)
	if err := cert.CheckSignatureFrom(issuer); err != nil {
		t.Errorf("device certificate not signed by the issuer: %v", err)
	}
	var aws map[string]string
	b, _ := os.ReadFile(filepath.Join(dir, "aws-connector.json"))
	if err := json.Unmarshal(b, &aws); err != nil {
		t.Fatal(err)
	}
	if aws["cert"] != DeviceDir+"/device.crt" || aws["clientId"] != "acme:dev-7" || aws["tenantId"] != "default-tenant-id" {
		t.Errorf("aws-connector.json = %v", aws)
	}
}

func TestRejects(t *testing.T) {
	for name, o := range map[string]Options{
		"no identity":     {},
		"bad id":          {DeviceID: "no-namespace"},
		"bad cloud":       {Serial: "1", Cloud: "azure"},
		"aws no endpoint": {Serial: "1", Cloud: CloudAWS},
		"issuer half":     {Serial: "1", IssuerCert: "x"},
	} {
		if _, err := Write(t.TempDir(), o); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}
