package awsconnector

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"regexp"

	"github.com/kantofw/kanto/services/internal/config"
	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/uplink"
)

// Settings are aws-connector's configuration: upstream's JSON keys and
// flag names, plus the offline buffer and fleet provisioning keys (ours).
type Settings struct {
	Address  string   `json:"address"`
	TenantID string   `json:"tenantId"`
	ClientID string   `json:"clientId"`
	ALPN     []string `json:"alpn"`

	CACert string `json:"caCert"`
	Cert   string `json:"cert"`
	Key    string `json:"key"`
	uplink.TPMSettings

	uplink.LocalSettings

	TopicFilter    string   `json:"topicFilter"`
	PayloadFilters []string `json:"payloadFilters"`

	logging.Config

	// Beyond upstream: the disk buffer of messages towards the cloud.
	uplink.BufferSettings
	// Fleet provisioning by claim (ours): with no certificate at cert/key
	// yet, the connector connects with the claim certificate, obtains its
	// own certificate and thing name, and stores them at cert, key and
	// thingNameFile.
	ClaimCert              string            `json:"claimCert"`
	ClaimKey               string            `json:"claimKey"`
	ProvisioningTemplate   string            `json:"provisioningTemplate"`
	ProvisioningParameters map[string]string `json:"provisioningParameters"`
	ThingNameFile          string            `json:"thingNameFile"`
}

// Defaults are upstream's defaults plus ours.
func Defaults() Settings {
	return Settings{
		TenantID:       "default-tenant-id",
		CACert:         "aws.crt",
		LocalSettings:  uplink.LocalSettings{LocalAddress: "tcp://localhost:1883"},
		Config:         logging.Defaults("logs/aws-connector.log"),
		BufferSettings: uplink.DefaultBuffer("aws-connector-buffer.db"),
		ThingNameFile:  "thing-name",
	}
}

// RegisterFlags binds upstream's flag names to s.
func (s *Settings) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.Address, "address", s.Address, "AWS IoT Core endpoint, e.g. tls://<id>-ats.iot.<region>.amazonaws.com:8883")
	fs.StringVar(&s.TenantID, "tenantId", s.TenantID, "tenant id")
	fs.StringVar(&s.ClientID, "clientId", s.ClientID, "MQTT client id (default: the device id)")
	fs.Var(&config.StringList{Values: &s.ALPN, Split: true}, "alpn", "TLS ALPN protocols, space separated")
	fs.StringVar(&s.CACert, "caCert", s.CACert, "PEM CA bundle of AWS IoT Core (Amazon root CA)")
	fs.StringVar(&s.Cert, "cert", s.Cert, "PEM device certificate; its subject CN is the device id")
	fs.StringVar(&s.Key, "key", s.Key, "PEM device private key")
	s.TPMSettings.RegisterFlags(fs)
	s.LocalSettings.RegisterFlags(fs)
	fs.StringVar(&s.TopicFilter, "topicFilter", s.TopicFilter, "regex: twin messages whose Ditto topic matches are not sent to shadows")
	fs.Var(&config.StringList{Values: &s.PayloadFilters}, "payloadFilters", "regex (repeatable): value leaves whose path matches are not sent to shadows")
	s.Config.RegisterFlags(fs)
	s.BufferSettings.RegisterFlags(fs)
	fs.StringVar(&s.ClaimCert, "claimCert", s.ClaimCert, "PEM claim certificate for fleet provisioning")
	fs.StringVar(&s.ClaimKey, "claimKey", s.ClaimKey, "PEM claim private key for fleet provisioning")
	fs.StringVar(&s.ProvisioningTemplate, "provisioningTemplate", s.ProvisioningTemplate, "fleet provisioning template name")
	fs.StringVar(&s.ThingNameFile, "thingNameFile", s.ThingNameFile, "where fleet provisioning stores the thing name")
}

// ErrConfig marks settings that cannot work.
var ErrConfig = uplink.ErrConfig

// Validate applies upstream's checks.
func (s *Settings) Validate() error {
	if err := s.Config.Validate(); err != nil {
		return err
	}
	if err := s.LocalSettings.Validate(); err != nil {
		return err
	}
	if s.Address == "" {
		return fmt.Errorf("address must be set (e.g. tls://<endpoint>:8883): %w", ErrConfig)
	}
	if _, err := url.ParseRequestURI(s.Address); err != nil {
		return fmt.Errorf("address %q is not a URI: %w", s.Address, ErrConfig)
	}
	if s.CACert != "" {
		if _, err := os.Stat(s.CACert); err != nil {
			return fmt.Errorf("caCert %s: %v: %w", s.CACert, err, ErrConfig)
		}
	}
	if err := s.TPMSettings.Validate(); err != nil {
		return err
	}
	if s.Cert == "" || (s.Key == "" && s.TPMDevice == "") {
		return fmt.Errorf("cert and key (or a TPM key) must be set (the certificate's CN is the device id): %w", ErrConfig)
	}
	claim := s.ClaimCert != "" || s.ClaimKey != "" || s.ProvisioningTemplate != ""
	if claim && s.TPMDevice != "" {
		// Fleet provisioning writes a new key file, which a TPM key cannot be.
		return fmt.Errorf("fleet provisioning (claimCert) cannot be combined with tpmDevice: %w", ErrConfig)
	}
	if claim && (s.ClaimCert == "" || s.ClaimKey == "" || s.ProvisioningTemplate == "" || s.ThingNameFile == "") {
		return fmt.Errorf("fleet provisioning needs claimCert, claimKey, provisioningTemplate and thingNameFile: %w", ErrConfig)
	}
	if _, err := s.filters(); err != nil {
		return err
	}
	if err := s.BufferSettings.Validate(); err != nil {
		return err
	}
	return nil
}

type filters struct {
	topic   *regexp.Regexp
	payload []*regexp.Regexp
}

func (s *Settings) filters() (filters, error) {
	var f filters
	var err error
	if s.TopicFilter != "" {
		if f.topic, err = regexp.Compile(s.TopicFilter); err != nil {
			return f, fmt.Errorf("topicFilter: %v: %w", err, ErrConfig)
		}
	}
	for _, p := range s.PayloadFilters {
		re, err := regexp.Compile(p)
		if err != nil {
			return f, fmt.Errorf("payloadFilters %q: %v: %w", p, err, ErrConfig)
		}
		f.payload = append(f.payload, re)
	}
	return f, nil
}

// ErrIdentity marks a device certificate that gives no device id.
var ErrIdentity = errors.New("device identity")

// deviceID reads the device id from the certificate's subject CN, which
// must be a namespaced id (<namespace>:<name>), as upstream.
func deviceID(certFile string) (string, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return "", fmt.Errorf("%w: %s holds no PEM certificate", ErrIdentity, certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrIdentity, certFile, err)
	}
	cn := cert.Subject.CommonName
	if _, _, err := ditto.SplitID(cn); err != nil {
		return "", fmt.Errorf("%w: the certificate's CN %q is not a device id: %v", ErrIdentity, cn, err)
	}
	return cn, nil
}
