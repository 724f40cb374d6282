package awsconnector

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/uplink"
)

// ErrProvisioning marks a fleet provisioning that did not give the device
// its identity (rejected, or no answer).
var ErrProvisioning = errors.New("fleet provisioning")

// provisionTimeout bounds the wait for each answer of AWS.
const provisionTimeout = 30 * time.Second

// provisioningError is AWS's rejected document.
type provisioningError struct {
	StatusCode   int    `json:"statusCode"`
	ErrorCode    string `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}

// provision obtains a certificate and a thing name with the claim
// certificate (CreateKeysAndCertificate, then RegisterThing with the
// template), stores them at cert, key and thingNameFile, and sets the
// identity. Files are written to temporaries and renamed, the thing name
// last, so a power loss leaves the device provisioned or not, never half.
func (c *Connector) provision(ctx context.Context) error {
	tlsCfg, _, err := uplink.TLSConfig(c.s.CACert, c.s.ClaimCert, c.s.ClaimKey, c.s.ALPN)
	if err != nil {
		return err
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	clientID := "provisioning-" + hex.EncodeToString(b[:])
	answers := make(chan mqtt.Message, 8)
	cl := mqtt.New(mqtt.Options{URL: c.s.Address, ClientID: clientID, CleanSession: true, TLS: tlsCfg, Log: c.log})
	defer cl.Close()
	const create = "$aws/certificates/create/json"
	register := "$aws/provisioning-templates/" + c.s.ProvisioningTemplate + "/provision/json"
	for _, f := range []string{create + "/accepted", create + "/rejected", register + "/accepted", register + "/rejected"} {
		_ = cl.Subscribe(ctx, f, 1, func(_ context.Context, m mqtt.Message) {
			select {
			case answers <- m:
			default:
			}
		})
	}
	c.log.Info("fleet provisioning with the claim certificate", "address", c.s.Address, "template", c.s.ProvisioningTemplate)
	if err := cl.Connect(ctx); err != nil {
		return fmt.Errorf("%w: connect with the claim certificate: %w", ErrProvisioning, err)
	}
	call := func(topic string, req any) ([]byte, error) {
		data, _ := json.Marshal(req)
		pctx, cancel := context.WithTimeout(ctx, provisionTimeout)
		defer cancel()
		if err := cl.Publish(pctx, mqtt.Message{Topic: topic, Payload: data, QoS: 1}); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrProvisioning, err)
		}
		for {
			select {
			case <-pctx.Done():
				return nil, fmt.Errorf("%w: no answer on %s/accepted: %w", ErrProvisioning, topic, pctx.Err())
			case m := <-answers:
				switch m.Topic {
				case topic + "/accepted":
					return m.Payload, nil
				case topic + "/rejected":
					var e provisioningError
					_ = json.Unmarshal(m.Payload, &e)
					return nil, fmt.Errorf("%w: %s rejected: %d %s: %s", ErrProvisioning, topic, e.StatusCode, e.ErrorCode, e.ErrorMessage)
				}
			}
		}
	}
	raw, err := call(create, map[string]any{})
	if err != nil {
		return err
	}
	var keys struct {
		CertificateID             string `json:"certificateId"`
		CertificatePem            string `json:"certificatePem"`
		PrivateKey                string `json:"privateKey"`
		CertificateOwnershipToken string `json:"certificateOwnershipToken"`
	}
	if err := json.Unmarshal(raw, &keys); err != nil || keys.CertificatePem == "" || keys.PrivateKey == "" || keys.CertificateOwnershipToken == "" {
		return fmt.Errorf("%w: CreateKeysAndCertificate answer incomplete", ErrProvisioning)
	}
	params := c.s.ProvisioningParameters
	if params == nil {
		params = map[string]string{}
	}
	raw, err = call(register, map[string]any{"certificateOwnershipToken": keys.CertificateOwnershipToken, "parameters": params})
	if err != nil {
		return err
	}
	var reg struct {
		ThingName string `json:"thingName"`
	}
	if err := json.Unmarshal(raw, &reg); err != nil || reg.ThingName == "" {
		return fmt.Errorf("%w: RegisterThing answer has no thingName", ErrProvisioning)
	}
	if _, _, err := ditto.SplitID(reg.ThingName); err != nil {
		return fmt.Errorf("%w: thing name %q is not a device id (<namespace>:<name>): %v", ErrProvisioning, reg.ThingName, err)
	}
	for _, f := range []struct {
		path string
		data string
		mode os.FileMode
	}{
		{c.s.Key, keys.PrivateKey, 0o600},
		{c.s.Cert, keys.CertificatePem, 0o644},
		{c.s.ThingNameFile, reg.ThingName + "\n", 0o644},
	} {
		if err := writeAtomic(f.path, []byte(f.data), f.mode); err != nil {
			return fmt.Errorf("%w: store credentials: %w", ErrProvisioning, err)
		}
	}
	c.log.Info("fleet provisioning done", "thingName", reg.ThingName, "certificateId", keys.CertificateID)
	c.setIdentity(strings.TrimSpace(reg.ThingName))
	return nil
}

// writeAtomic writes data to path through a synced temporary file.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
