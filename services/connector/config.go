package connector

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/kantofw/kanto/services/internal/config"
	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/uplink"
)

// Settings are the suite connector's configuration. JSON keys and flag
// names are upstream's; the buffer keys are ours.
type Settings struct {
	Address         string   `json:"address"`
	DeviceID        string   `json:"deviceId"`
	DeviceIDPattern string   `json:"deviceIdPattern"`
	TenantID        string   `json:"tenantId"`
	AuthID          string   `json:"authId"`
	Username        string   `json:"username"`
	Password        string   `json:"password"`
	ClientID        string   `json:"clientId"`
	PolicyID        string   `json:"policyId"`
	Generic         bool     `json:"generic"`
	ALPN            []string `json:"alpn"`

	CACert string `json:"caCert"`
	Cert   string `json:"cert"`
	Key    string `json:"key"`
	uplink.TPMSettings

	uplink.LocalSettings

	ProvisioningFile string `json:"provisioningFile"`

	logging.Config

	// Beyond upstream: the disk buffer of messages towards the cloud.
	uplink.BufferSettings
}

// Defaults returns upstream's defaults plus ours.
func Defaults() Settings {
	return Settings{
		Address:          "mqtts://mqtt.bosch-iot-hub.com:8883",
		CACert:           "iothub.crt",
		LocalSettings:    uplink.LocalSettings{LocalAddress: "tcp://localhost:1883"},
		ProvisioningFile: "provisioning.json",
		Config:           logging.Defaults("log/suite-connector.log"),
		BufferSettings:   uplink.DefaultBuffer("suite-connector-buffer.db"),
	}
}

// RegisterFlags binds upstream's flag names to s.
func (s *Settings) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.Address, "address", s.Address, "remote (hub) MQTT address")
	fs.StringVar(&s.DeviceID, "deviceId", s.DeviceID, "device id, <namespace>:<name>")
	fs.StringVar(&s.DeviceIDPattern, "deviceIdPattern", s.DeviceIDPattern, "device id pattern with {{subject-dn}} or {{subject-cn}} from the client certificate")
	fs.StringVar(&s.TenantID, "tenantId", s.TenantID, "tenant id")
	fs.StringVar(&s.AuthID, "authId", s.AuthID, "authentication id; the user name is <authId>@<tenantId>")
	fs.StringVar(&s.Username, "username", s.Username, "MQTT user name (takes precedence over authId@tenantId)")
	fs.StringVar(&s.Password, "password", s.Password, "MQTT password")
	fs.StringVar(&s.ClientID, "clientId", s.ClientID, "hub MQTT client id (random when empty)")
	fs.StringVar(&s.PolicyID, "policyId", s.PolicyID, "policy id announced in the thing info")
	fs.BoolVar(&s.Generic, "generic", s.Generic, "generic (non-Hono) cloud topics")
	fs.Var(&config.StringList{Values: &s.ALPN, Split: true}, "alpn", "TLS ALPN protocols, space separated")
	fs.StringVar(&s.CACert, "caCert", s.CACert, "PEM CA bundle of the hub")
	fs.StringVar(&s.Cert, "cert", s.Cert, "PEM client certificate")
	fs.StringVar(&s.Key, "key", s.Key, "PEM client private key")
	s.TPMSettings.RegisterFlags(fs)
	s.LocalSettings.RegisterFlags(fs)
	fs.StringVar(&s.ProvisioningFile, "provisioningFile", s.ProvisioningFile, "provisioning file (Bosch IoT Suite format), watched for changes")
	s.Config.RegisterFlags(fs)
	s.BufferSettings.RegisterFlags(fs)
}

// GenericMode reports whether this launch uses the generic (non-Hono) hub
// topics (reference §2.5): when generic is set, or, as upstream, whenever
// the address host ends in "amazonaws.com" (AWS IoT Core), whatever generic
// says. Upstream's test is a plain suffix on the parsed URL's host name
// (case as written, no dot boundary); an address that does not parse is not
// AWS. Call it after the provisioning file was merged: that file may set
// the address.
func (s *Settings) GenericMode() bool {
	if s.Generic {
		return true
	}
	u, err := url.Parse(s.Address)
	if err != nil {
		return false
	}
	return strings.HasSuffix(u.Hostname(), "amazonaws.com")
}

// ErrConfig marks settings that cannot work.
var ErrConfig = errors.New("invalid settings")

// ValidateStatic applies upstream's start-up checks.
func (s *Settings) ValidateStatic() error {
	if err := s.Config.Validate(); err != nil {
		return err
	}
	if err := s.LocalSettings.Validate(); err != nil {
		return err
	}
	if _, err := url.ParseRequestURI(s.Address); s.Address != "" && err != nil {
		return fmt.Errorf("address %q is not a URI: %w", s.Address, ErrConfig)
	}
	if mqtt.IsSecure(s.Address) {
		if s.CACert == "" {
			return fmt.Errorf("address %s uses TLS: set caCert: %w", s.Address, ErrConfig)
		}
		if _, err := os.Stat(s.CACert); err != nil {
			return fmt.Errorf("caCert %s: %v: %w", s.CACert, err, ErrConfig)
		}
	}
	if s.DeviceIDPattern != "" {
		if s.DeviceID != "" {
			return fmt.Errorf("deviceIdPattern cannot be combined with deviceId: %w", ErrConfig)
		}
		if s.Cert == "" {
			return fmt.Errorf("deviceIdPattern needs cert: %w", ErrConfig)
		}
	}
	if err := s.TPMSettings.Validate(); err != nil {
		return err
	}
	if err := s.BufferSettings.Validate(); err != nil {
		return err
	}
	return nil
}

// ValidateDynamic applies upstream's checks at each launch (after the
// provisioning file was merged).
func (s *Settings) ValidateDynamic() error {
	if s.DeviceID == "" && s.DeviceIDPattern == "" {
		return fmt.Errorf("deviceId or deviceIdPattern must be set: %w", ErrConfig)
	}
	if s.DeviceID != "" {
		if _, _, err := ditto.SplitID(s.DeviceID); err != nil {
			return fmt.Errorf("deviceId: %w", err)
		}
	}
	if s.TenantID == "" {
		return fmt.Errorf("tenantId must be set: %w", ErrConfig)
	}
	if s.Address == "" {
		return fmt.Errorf("address must be set: %w", ErrConfig)
	}
	return nil
}

// Env holds the environment overrides upstream reads: the ones every
// connector shares, plus the suite connector's own.
type Env struct {
	uplink.Env
	MessageRate                   float64 // messages/s towards the hub, 0 = unlimited
	EventsPrefix, TelemetryPrefix string  // generic mode only
	ResponsePrefix                string
}

// ReadEnv reads the overrides; invalid numbers are errors naming the variable.
func ReadEnv(getenv func(string) string) (Env, error) {
	base, err := uplink.ReadEnv(getenv)
	if err != nil {
		return Env{}, err
	}
	e := Env{
		Env:             base,
		EventsPrefix:    getenv("EVENTS_TOPIC_PREFIX"),
		TelemetryPrefix: getenv("TELEMETRY_TOPIC_PREFIX"),
		ResponsePrefix:  getenv("COMMAND_RESPONSE_TOPIC_PREFIX"),
	}
	if v := getenv("MESSAGE_RATE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return e, fmt.Errorf("MESSAGE_RATE=%q: want a number: %w", v, ErrConfig)
		}
		if f > 0 {
			e.MessageRate = f
		}
	}
	return e, nil
}
