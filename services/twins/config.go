package twins

import (
	"flag"
	"fmt"
	"net/url"
	"os"

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
// file is merged, dynamic): ValidateStatic, then the hub and identity
// settings.
func (s *Settings) Validate() error {
	if err := s.ValidateStatic(); err != nil {
		return err
	}
	return s.validateHub()
}

// ValidateStatic checks what the provisioning file cannot change (log,
// local broker, TPM, twin database, offline buffer): these errors fail the
// start whatever the file holds.
func (s *Settings) ValidateStatic() error {
	if err := s.Config.Validate(); err != nil {
		return err
	}
	if err := s.LocalSettings.Validate(); err != nil {
		return err
	}
	if err := s.TPMSettings.Validate(); err != nil {
		return err
	}
	if s.ThingsDB == "" {
		return fmt.Errorf("thingsDb must be set: %w", ErrConfig)
	}
	return s.BufferSettings.Validate()
}

// validateHub checks the device identity and the hub settings: the
// provisioning file may set them (address, deviceId, tenantId), so with a
// file configured their errors are reported as a status and waited out
// (see the package doc), not a start error. The caCert check belongs here
// as it depends on the address.
func (s *Settings) validateHub() error {
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
	if _, _, err := ditto.SplitID(s.DeviceID); err != nil {
		return fmt.Errorf("deviceId: %w: %w", err, ErrConfig)
	}
	if s.TenantID == "" {
		return fmt.Errorf("tenantId must be set: %w", ErrConfig)
	}
	return nil
}

// ErrProvisioning marks a provisioning file that cannot be used.
var ErrProvisioning = uplink.ErrProvisioning

// provision merges the provisioning file into s, then applies reapply (the
// flags given explicitly) when not nil. found is false without a file.
func provision(s *Settings, reapply func(*Settings)) (found bool, err error) {
	found, err = applyProvisioning(s.ProvisioningFile, s)
	if err == nil && reapply != nil {
		reapply(s)
	}
	return found, err
}

// applyProvisioning merges the Bosch IoT Suite provisioning file into s
// (only the fields upstream reads; absent keys keep their values). With a
// file, auto-provisioning follows its authorities. found is false without
// a file.
func applyProvisioning(path string, s *Settings) (found bool, err error) {
	p, found, err := uplink.ReadProvisioning(path)
	if err != nil || !found {
		return found, err
	}
	uplink.Merge(&s.DeviceID, p.DeviceID)
	uplink.Merge(&s.TenantID, p.TenantID)
	uplink.Merge(&s.AuthID, p.AuthID)
	uplink.Merge(&s.PolicyID, p.PolicyID)
	uplink.Merge(&s.Address, p.Address)
	uplink.Merge(&s.Password, p.Password)
	s.AutoProvisioning = p.AutoProvisioning()
	return true, nil
}
