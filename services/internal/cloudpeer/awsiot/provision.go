package awsiot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/kantofw/kanto/services/internal/mqtt"
)

// provisioningError is the rejected document of the provisioning API.
type provisioningError struct {
	StatusCode   int    `json:"statusCode"`
	ErrorCode    string `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}

// createKeysAndCertificate answers $aws/certificates/create/json with a new
// key pair and a certificate (CN "AWS IoT Certificate", as AWS issues it).
func (s *Service) createKeysAndCertificate(ctx context.Context, _ mqtt.Message) {
	const topic = "$aws/certificates/create/json"
	if s.o.CA == nil {
		s.reply(ctx, topic+"/rejected", provisioningError{500, "InternalFailure", "no CA configured"})
		return
	}
	certPEM, keyPEM, err := s.o.CA.Issue("AWS IoT Certificate", false)
	if err != nil {
		s.reply(ctx, topic+"/rejected", provisioningError{500, "InternalFailure", err.Error()})
		return
	}
	sum := sha256.Sum256(certPEM)
	id := hex.EncodeToString(sum[:])
	token := rid() + rid()
	s.mu.Lock()
	s.tokens[token] = id
	s.certs[id] = string(certPEM)
	s.mu.Unlock()
	s.reply(ctx, topic+"/accepted", map[string]string{
		"certificateId": id, "certificatePem": string(certPEM), "privateKey": string(keyPEM), "certificateOwnershipToken": token,
	})
}

// registerThing answers $aws/provisioning-templates/<name>/provision/json.
func (s *Service) registerThing(ctx context.Context, m mqtt.Message) {
	name := strings.TrimSuffix(strings.TrimPrefix(m.Topic, "$aws/provisioning-templates/"), "/provision/json")
	base := "$aws/provisioning-templates/" + name + "/provision/json"
	var req struct {
		CertificateOwnershipToken string            `json:"certificateOwnershipToken"`
		Parameters                map[string]string `json:"parameters"`
	}
	if err := json.Unmarshal(m.Payload, &req); err != nil {
		s.reply(ctx, base+"/rejected", provisioningError{400, "InvalidPayload", "Payload contains invalid json"})
		return
	}
	tmpl, ok := s.o.Templates[name]
	if !ok {
		s.reply(ctx, base+"/rejected", provisioningError{404, "ResourceNotFound", "Template " + name + " not found"})
		return
	}
	s.mu.Lock()
	certID, ok := s.tokens[req.CertificateOwnershipToken]
	delete(s.tokens, req.CertificateOwnershipToken)
	s.mu.Unlock()
	if !ok {
		s.reply(ctx, base+"/rejected", provisioningError{400, "InvalidCertificateOwnershipToken", "Certificate ownership token is invalid or expired"})
		return
	}
	thing, err := tmpl.ThingName(req.Parameters)
	if err != nil {
		s.reply(ctx, base+"/rejected", provisioningError{400, "InvalidParameters", err.Error()})
		return
	}
	s.mu.Lock()
	s.things[thing] = certID
	s.mu.Unlock()
	cfg := tmpl.DeviceConfiguration
	if cfg == nil {
		cfg = map[string]string{}
	}
	s.reply(ctx, base+"/accepted", map[string]any{"deviceConfiguration": cfg, "thingName": thing})
}
