package connector

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"

	"github.com/kantofw/kanto/services/internal/buffer"
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

	CACert    string `json:"caCert"`
	Cert      string `json:"cert"`
	Key       string `json:"key"`
	TPMDevice string `json:"tpmDevice"`
	TPMHandle uint64 `json:"tpmHandle"`
	TPMKey    string `json:"tpmKey"`
	TPMKeyPub string `json:"tpmKeyPub"`

	LocalAddress  string `json:"localAddress"`
	LocalUsername string `json:"localUsername"`
	LocalPassword string `json:"localPassword"`
	LocalCACert   string `json:"localCACert"`
	LocalCert     string `json:"localCert"`
	LocalKey      string `json:"localKey"`

	ProvisioningFile string `json:"provisioningFile"`

	logging.Config

	// Beyond upstream: the disk buffer of messages towards the cloud.
	BufferFile     string `json:"bufferFile"`
	BufferSize     int64  `json:"bufferSize"`     // bytes
	BufferOverflow string `json:"bufferOverflow"` // drop-oldest | reject-new
}

// Defaults returns upstream's defaults plus ours.
func Defaults() Settings {
	return Settings{
		Address:          "mqtts://mqtt.bosch-iot-hub.com:8883",
		CACert:           "iothub.crt",
		LocalAddress:     "tcp://localhost:1883",
		ProvisioningFile: "provisioning.json",
		Config:           logging.Defaults("log/suite-connector.log"),
		BufferFile:       "suite-connector-buffer.db",
		BufferSize:       64 << 20,
		BufferOverflow:   "drop-oldest",
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
	fs.StringVar(&s.TPMDevice, "tpmDevice", s.TPMDevice, "TPM device (not supported by this build)")
	fs.Uint64Var(&s.TPMHandle, "tpmHandle", s.TPMHandle, "TPM key handle")
	fs.StringVar(&s.TPMKey, "tpmKey", s.TPMKey, "TPM private key blob")
	fs.StringVar(&s.TPMKeyPub, "tpmKeyPub", s.TPMKeyPub, "TPM public key blob")
	fs.StringVar(&s.LocalAddress, "localAddress", s.LocalAddress, "local MQTT broker address")
	fs.StringVar(&s.LocalUsername, "localUsername", s.LocalUsername, "local broker user name")
	fs.StringVar(&s.LocalPassword, "localPassword", s.LocalPassword, "local broker password")
	fs.StringVar(&s.LocalCACert, "localCACert", s.LocalCACert, "PEM CA of the local broker")
	fs.StringVar(&s.LocalCert, "localCert", s.LocalCert, "PEM client certificate for the local broker")
	fs.StringVar(&s.LocalKey, "localKey", s.LocalKey, "PEM client key for the local broker")
	fs.StringVar(&s.ProvisioningFile, "provisioningFile", s.ProvisioningFile, "provisioning file (Bosch IoT Suite format), watched for changes")
	s.Config.RegisterFlags(fs)
	fs.StringVar(&s.BufferFile, "bufferFile", s.BufferFile, "file of the offline buffer towards the cloud")
	fs.Int64Var(&s.BufferSize, "bufferSize", s.BufferSize, "offline buffer size in bytes")
	fs.StringVar(&s.BufferOverflow, "bufferOverflow", s.BufferOverflow, "when the buffer is full: drop-oldest or reject-new")
}

// ErrConfig marks settings that cannot work.
var ErrConfig = errors.New("invalid settings")

// ValidateStatic applies upstream's start-up checks.
func (s *Settings) ValidateStatic() error {
	if err := s.Config.Validate(); err != nil {
		return err
	}
	if s.LocalAddress == "" {
		return fmt.Errorf("localAddress must be set: %w", ErrConfig)
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
	if s.TPMDevice != "" {
		return fmt.Errorf("tpmDevice is set, but this build has no TPM support; use cert and key: %w", ErrConfig)
	}
	if s.BufferSize < 64<<10 {
		return fmt.Errorf("bufferSize must be at least 65536 bytes (got %d): %w", s.BufferSize, ErrConfig)
	}
	if _, err := buffer.ParsePolicy(s.BufferOverflow); err != nil {
		return fmt.Errorf("bufferOverflow: %v: %w", err, ErrConfig)
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
