// Package provision creates a device's factory identity: an ECDSA P-256
// device key, a certificate request and a certificate (self-signed, or
// issued by a factory CA), and the connection settings of the device's
// cloud, as the files the connectors read:
//
//	identity.json       {"deviceId", "tenantId", "serial", "cloud", "keyId", "created"}
//	device.key          PKCS#8 PEM, mode 0600
//	device.csr          PKCS#10 PEM (for a CA outside the factory)
//	device.crt          PEM, CN = device id
//	ca.crt              the hub's CA bundle, when given
//	provisioning.json   Hono (Bosch IoT Suite format, read by suite-connector)
//	aws-connector.json  AWS IoT (address, thing name, certificate paths)
//
// On the image these live in /data/kanto/provisioning (the data
// partition), so one built image serves every device.
package provision

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// ErrInvalid marks unusable provisioning options.
var ErrInvalid = errors.New("invalid provisioning options")

// Clouds.
const (
	CloudHono = "hono"
	CloudAWS  = "aws"
)

// DeviceDir is where the files go on the device.
const DeviceDir = "/data/kanto/provisioning"

// Options describe one device.
type Options struct {
	Cloud string // hono (default) or aws
	// Serial is the board's hardware identity (board.Identity on a device,
	// a factory-assigned number on the line).
	Serial string
	// DeviceID is the namespaced id "ns:name" (default Namespace:Serial).
	DeviceID  string
	Namespace string // default org.eclipse.kanto
	TenantID  string // Hono tenant (default "kanto"); AWS: default-tenant-id
	AuthID    string // Hono auth id (default: the device id with ':' → '_')
	// Password for Hono username/password auth; empty generates one. With
	// X509 the certificate authenticates and no password is written.
	Password string
	X509     bool
	// Address is the hub, e.g. mqtts://hono.example.com:8883 (Hono) or
	// the AWS IoT endpoint (required for AWS).
	Address string
	// CACertFile is the hub's CA bundle, copied to ca.crt.
	CACertFile string
	// IssuerCert/IssuerKey, when set, sign the device certificate (a
	// factory CA); otherwise it is self-signed.
	IssuerCert, IssuerKey string
	// DeviceDir is the directory the connector will find the files in
	// (default DeviceDir); it goes into the connector settings.
	DeviceDir string
	Now       func() time.Time
}

// Identity is identity.json.
type Identity struct {
	DeviceID string    `json:"deviceId"`
	TenantID string    `json:"tenantId"`
	Serial   string    `json:"serial"`
	Cloud    string    `json:"cloud"`
	KeyID    string    `json:"keyId"` // hex SHA-256 of the public key's SPKI DER
	Created  time.Time `json:"created"`
}

var deviceIDRe = regexp.MustCompile(`^[A-Za-z0-9._-]+(\.[A-Za-z0-9._-]+)*:[^\s:/?#]+(:[^\s/?#]+)*$`)

func (o *Options) defaults() error {
	if o.Cloud == "" {
		o.Cloud = CloudHono
	}
	if o.Cloud != CloudHono && o.Cloud != CloudAWS {
		return fmt.Errorf("cloud %q (hono or aws): %w", o.Cloud, ErrInvalid)
	}
	if o.Namespace == "" {
		o.Namespace = "org.eclipse.kanto"
	}
	if o.DeviceID == "" {
		if o.Serial == "" {
			return fmt.Errorf("a serial or a device id is needed: %w", ErrInvalid)
		}
		o.DeviceID = o.Namespace + ":" + o.Serial
	}
	if !deviceIDRe.MatchString(o.DeviceID) {
		return fmt.Errorf("device id %q is not namespace:name: %w", o.DeviceID, ErrInvalid)
	}
	if o.Serial == "" {
		o.Serial = o.DeviceID[strings.Index(o.DeviceID, ":")+1:]
	}
	if o.TenantID == "" {
		o.TenantID = "kanto"
		if o.Cloud == CloudAWS {
			o.TenantID = "default-tenant-id"
		}
	}
	if o.AuthID == "" {
		o.AuthID = strings.ReplaceAll(o.DeviceID, ":", "_")
	}
	if o.Cloud == CloudAWS && o.Address == "" {
		return fmt.Errorf("AWS needs the IoT endpoint address: %w", ErrInvalid)
	}
	if o.Address != "" {
		if _, err := url.Parse(o.Address); err != nil {
			return fmt.Errorf("address %q: %w", o.Address, ErrInvalid)
		}
	}
	if (o.IssuerCert == "") != (o.IssuerKey == "") {
		return fmt.Errorf("issuer certificate and key go together: %w", ErrInvalid)
	}
	if o.DeviceDir == "" {
		o.DeviceDir = DeviceDir
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Write provisions one device into dir and returns its identity.
func Write(dir string, o Options) (*Identity, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(spki)
	now := o.Now().UTC().Truncate(time.Second)
	id := &Identity{DeviceID: o.DeviceID, TenantID: o.TenantID, Serial: o.Serial, Cloud: o.Cloud, KeyID: hex.EncodeToString(sum[:]), Created: now}
	subject := pkix.Name{CommonName: o.DeviceID, SerialNumber: o.Serial, Organization: []string{o.TenantID}}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
	if err != nil {
		return nil, err
	}
	cert, err := o.certificate(subject, key, now)
	if err != nil {
		return nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"device.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600},
		{"device.csr", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), 0o644},
		{"device.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}), 0o644},
	}
	if o.CACertFile != "" {
		ca, err := os.ReadFile(o.CACertFile)
		if err != nil {
			return nil, err
		}
		files = append(files, struct {
			name string
			data []byte
			mode os.FileMode
		}{"ca.crt", ca, 0o644})
	}
	idJSON, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return nil, err
	}
	files = append(files, struct {
		name string
		data []byte
		mode os.FileMode
	}{"identity.json", append(idJSON, '\n'), 0o644})
	name, settings, err := o.settings()
	if err != nil {
		return nil, err
	}
	files = append(files, struct {
		name string
		data []byte
		mode os.FileMode
	}{name, settings, 0o600})
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return nil, err
		}
	}
	return id, nil
}

func (o *Options) certificate(subject pkix.Name, key *ecdsa.PrivateKey, now time.Time) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: subject,
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	parent, signer := tmpl, any(key)
	if o.IssuerCert != "" {
		parent, signer, err = loadIssuer(o.IssuerCert, o.IssuerKey)
		if err != nil {
			return nil, err
		}
	}
	return x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
}

func loadIssuer(certPath, keyPath string) (*x509.Certificate, any, error) {
	cb, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	blk, _ := pem.Decode(cb)
	if blk == nil {
		return nil, nil, fmt.Errorf("%s: no PEM certificate: %w", certPath, ErrInvalid)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	kblk, _ := pem.Decode(kb)
	if kblk == nil {
		return nil, nil, fmt.Errorf("%s: no PEM key: %w", keyPath, ErrInvalid)
	}
	if k, err := x509.ParsePKCS8PrivateKey(kblk.Bytes); err == nil {
		return cert, k, nil
	}
	if k, err := x509.ParseECPrivateKey(kblk.Bytes); err == nil {
		return cert, k, nil
	}
	k, err := x509.ParsePKCS1PrivateKey(kblk.Bytes)
	return cert, k, err
}

// settings renders the cloud-specific connection file.
func (o *Options) settings() (string, []byte, error) {
	dev := func(n string) string { return filepath.Join(o.DeviceDir, n) }
	if o.Cloud == CloudAWS {
		cfg := map[string]any{
			"address": o.Address, "tenantId": o.TenantID, "clientId": o.DeviceID,
			"cert": dev("device.crt"), "key": dev("device.key"),
		}
		if o.CACertFile != "" {
			cfg["caCert"] = dev("ca.crt")
		}
		b, err := json.MarshalIndent(cfg, "", "  ")
		return "aws-connector.json", append(b, '\n'), err
	}
	// Bosch IoT Suite provisioning format, the one suite-connector parses.
	creds := map[string]any{"deviceId": o.DeviceID, "tenantId": o.TenantID, "authId": o.AuthID}
	if o.X509 {
		creds["type"] = "x509-cert"
	} else {
		if o.Password == "" {
			b := make([]byte, 18)
			if _, err := rand.Read(b); err != nil {
				return "", nil, err
			}
			o.Password = base64.RawURLEncoding.EncodeToString(b)
		}
		creds["type"] = "hashed-password"
		creds["secrets"] = []map[string]string{{"password": o.Password}}
	}
	if o.Address != "" {
		u, _ := url.Parse(o.Address)
		adapter := map[string]any{"type": "mqtt", "uri": u.Scheme + "://" + u.Hostname()}
		if p := u.Port(); p != "" {
			adapter["port"] = p
		}
		creds["adapters"] = []any{adapter}
	}
	doc := map[string]any{
		"id": o.DeviceID,
		"hub": map[string]any{
			"device":      map[string]any{"enabled": true, "authorities": []string{"auto-provisioning-enabled"}},
			"credentials": creds,
		},
		"things": map[string]any{"thing": map[string]any{"thingId": o.DeviceID, "policyId": o.DeviceID}},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	return "provisioning.json", append(b, '\n'), err
}
