package twins

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strconv"

	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/uplink"
)

// Settings are local-digital-twins' configuration: upstream's JSON keys
// and flag names, plus the offline buffer keys (ours).
type Settings struct {
	Address  string `json:"address"`
	DeviceID string `json:"deviceId"`
	TenantID string `json:"tenantId"`
	AuthID   string `json:"authId"`
	Username string `json:"username"`
	Password string `json:"password"`
	ClientID string `json:"clientId"`
	PolicyID string `json:"policyId"`

	CACert string `json:"caCert"`
	Cert   string `json:"cert"`
	Key    string `json:"key"`
	uplink.TPMSettings

	uplink.LocalSettings

	ProvisioningFile string `json:"provisioningFile"`
	ThingsDB         string `json:"thingsDb"`

	logging.Config

	// Beyond upstream: the disk buffer of messages towards the cloud.
	uplink.BufferSettings
	// AutoProvisioning comes from the provisioning file's authorities
	// (true without a file, as upstream); not a key of its own.
	AutoProvisioning bool `json:"-"`
}

// Defaults are upstream's defaults plus ours.
func Defaults() Settings {
	return Settings{
		Address:          "mqtts://mqtt.bosch-iot-hub.com:8883",
		CACert:           "iothub.crt",
		LocalSettings:    uplink.LocalSettings{LocalAddress: "tcp://localhost:1883"},
		ProvisioningFile: "provisioning.json",
		ThingsDB:         "things.db",
		Config:           logging.Defaults("log/local-digital-twins.log"),
		BufferSettings:   uplink.DefaultBuffer("local-digital-twins-buffer.db"),
		AutoProvisioning: true,
	}
}

// RegisterFlags binds upstream's flag names to s.
func (s *Settings) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.Address, "address", s.Address, "remote (hub) MQTT address")
	fs.StringVar(&s.DeviceID, "deviceId", s.DeviceID, "device id, <namespace>:<name>")
	fs.StringVar(&s.TenantID, "tenantId", s.TenantID, "tenant id")
	fs.StringVar(&s.AuthID, "authId", s.AuthID, "authentication id; the user name is <authId>@<tenantId>")
	fs.StringVar(&s.Username, "username", s.Username, "MQTT user name (takes precedence over authId@tenantId)")
	fs.StringVar(&s.Password, "password", s.Password, "MQTT password")
	fs.StringVar(&s.ClientID, "clientId", s.ClientID, "hub MQTT client id (random when empty)")
	fs.StringVar(&s.PolicyID, "policyId", s.PolicyID, "policy id announced in the thing info")
	fs.StringVar(&s.CACert, "caCert", s.CACert, "PEM CA bundle of the hub")
	fs.StringVar(&s.Cert, "cert", s.Cert, "PEM client certificate")
	fs.StringVar(&s.Key, "key", s.Key, "PEM client private key")
	s.TPMSettings.RegisterFlags(fs)
	s.LocalSettings.RegisterFlags(fs)
	fs.StringVar(&s.ProvisioningFile, "provisioningFile", s.ProvisioningFile, "provisioning file (Bosch IoT Suite format)")
	fs.StringVar(&s.ThingsDB, "thingsDb", s.ThingsDB, "local digital twins database")
	s.Config.RegisterFlags(fs)
	s.BufferSettings.RegisterFlags(fs)
}

// ErrConfig marks settings that cannot work.
var ErrConfig = uplink.ErrConfig

// Validate applies upstream's checks (static and, once the provisioning
// file is merged, dynamic).
func (s *Settings) Validate() error {
	if err := s.Config.Validate(); err != nil {
		return err
	}
	if err := s.LocalSettings.Validate(); err != nil {
		return err
	}
	if s.Address == "" {
		return fmt.Errorf("address must be set: %w", ErrConfig)
	}
	if _, err := url.ParseRequestURI(s.Address); err != nil {
		return fmt.Errorf("address %q is not a URI: %w", s.Address, ErrConfig)
	}
	if mqtt.IsSecure(s.Address) {
		if _, err := os.Stat(s.CACert); s.CACert == "" || err != nil {
			return fmt.Errorf("address %s uses TLS: caCert %q must be an existing file: %w", s.Address, s.CACert, ErrConfig)
		}
	}
	if err := s.TPMSettings.Validate(); err != nil {
		return err
	}
	if _, _, err := ditto.SplitID(s.DeviceID); err != nil {
		return fmt.Errorf("deviceId: %w: %w", err, ErrConfig)
	}
	if s.TenantID == "" {
		return fmt.Errorf("tenantId must be set: %w", ErrConfig)
	}
	if s.ThingsDB == "" {
		return fmt.Errorf("thingsDb must be set: %w", ErrConfig)
	}
	if err := s.BufferSettings.Validate(); err != nil {
		return err
	}
	return nil
}

// ErrProvisioning marks a provisioning file that cannot be used.
var ErrProvisioning = errors.New("provisioning error")

// applyProvisioning merges the Bosch IoT Suite provisioning file into s
// (only the fields upstream reads; absent keys keep their values).
func applyProvisioning(path string, s *Settings) error {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrProvisioning, err)
	}
	var p struct {
		Hub struct {
			Credentials struct {
				DeviceID *string `json:"deviceId"`
				TenantID *string `json:"tenantId"`
				AuthID   *string `json:"authId"`
				Adapters []struct {
					Type string          `json:"type"`
					URI  string          `json:"uri"`
					Port json.RawMessage `json:"port"`
				} `json:"adapters"`
				Secrets []struct {
					Password       *string `json:"password"`
					PasswordBase64 *string `json:"passwordBase64"`
				} `json:"secrets"`
			} `json:"credentials"`
			Device struct {
				Authorities []string `json:"authorities"`
			} `json:"device"`
		} `json:"hub"`
		Things struct {
			Thing struct {
				PolicyID *string `json:"policyId"`
			} `json:"thing"`
		} `json:"things"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrProvisioning, path, err)
	}
	c := p.Hub.Credentials
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&s.DeviceID, c.DeviceID)
	set(&s.TenantID, c.TenantID)
	set(&s.AuthID, c.AuthID)
	set(&s.PolicyID, p.Things.Thing.PolicyID)
	for _, a := range c.Adapters {
		if a.Type == "mqtt" && a.URI != "" {
			s.Address = a.URI
			if port := string(a.Port); port != "" && port != "null" {
				if n, err := strconv.Unquote(port); err == nil {
					port = n
				}
				s.Address += ":" + port
			}
			break
		}
	}
	for _, sec := range c.Secrets {
		if sec.PasswordBase64 != nil {
			b, err := base64.StdEncoding.DecodeString(*sec.PasswordBase64)
			if err != nil {
				return fmt.Errorf("%w: passwordBase64: %v", ErrProvisioning, err)
			}
			s.Password = string(b)
			break
		}
		if sec.Password != nil {
			s.Password = *sec.Password
			break
		}
	}
	s.AutoProvisioning = slices.Contains(p.Hub.Device.Authorities, "auto-provisioning-enabled")
	return nil
}
