package awsconnector_test

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kantofw/kanto/services/awsconnector"
	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/cloudpeer/awsiot"
	"github.com/kantofw/kanto/services/internal/kantotest"
	"github.com/kantofw/kanto/services/internal/tpmkey"
	"github.com/kantofw/kanto/services/internal/tpmkey/tpmkeytest"
)

// The device's private key is in a (software) TPM: the AWS endpoint, a real
// Mosquitto that requires client certificates, accepts the connector, and
// the device's data reaches the cloud.
func TestTPMKey(t *testing.T) {
	w := newWorld(t, awsiot.Options{})
	tpm := tpmkeytest.Start(t)
	priv, pub := tpm.CreateKey(t, "device", "ecc256")
	key, err := tpmkey.Open(tpmkey.Options{Device: tpm.Socket, Parent: tpmkeytest.Parent, Private: priv, Public: pub})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1000), Subject: pkix.Name{CommonName: device},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, w.cloud.CA.Cert, key.Public(), w.cloud.CA.Key)
	key.Close()
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(w.dir, "device.crt")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	w.settings["cert"] = certFile
	tpm.Settings(w.settings, priv, pub)
	w.start()
	w.status.AwaitTopic(t, 0, "#", kantotest.StatusIs("connected"))
	w.publish("t", `{"tpm":1}`)
	if _, err := w.cloud.NB.Await(ctxT(t), "telemetry/default-tenant-id/"+device, 1); err != nil {
		t.Fatal(err)
	}
}

// With a TPM key the key file is not needed; fleet provisioning, which
// writes a new key file, cannot be combined with it.
func TestTPMSettings(t *testing.T) {
	env := &cli.Env{Name: "aws-connector", Stderr: &bytes.Buffer{}, Stdout: &bytes.Buffer{}}
	s, _, err := awsconnector.LoadSettings(env, []string{"-address", "tls://x:8883", "-caCert", "", "-cert", "c.crt",
		"-tpmDevice", "/dev/tpmrm0", "-tpmHandle", "0x81000001", "-tpmKey", "k.priv", "-tpmKeyPub", "k.pub"})
	if err != nil {
		t.Fatal(err)
	}
	if s.TPMHandle != 0x81000001 {
		t.Errorf("tpmHandle %#x", s.TPMHandle)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("TPM key without key file: %v", err)
	}
	s.ClaimCert, s.ClaimKey, s.ProvisioningTemplate, s.ThingNameFile = "claim.crt", "claim.key", "kanto", "thing"
	if err := s.Validate(); !errors.Is(err, awsconnector.ErrConfig) {
		t.Errorf("fleet provisioning with a TPM key: %v", err)
	}
	s.ClaimCert, s.ClaimKey, s.ProvisioningTemplate, s.ThingNameFile = "", "", "", ""
	s.TPMDevice = ""
	if err := s.Validate(); !errors.Is(err, awsconnector.ErrConfig) {
		t.Errorf("no key file and no TPM: %v", err)
	}
}
