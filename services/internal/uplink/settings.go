package uplink

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"math"

	"github.com/kantofw/kanto/services/internal/buffer"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// The settings every cloud connector shares. Each is embedded in a
// service's Settings, so the JSON keys and flag names stay upstream's
// (encoding/json flattens embedded structs).

// LocalSettings is the connection to the device's local broker.
type LocalSettings struct {
	LocalAddress  string `json:"localAddress"`
	LocalUsername string `json:"localUsername"`
	LocalPassword string `json:"localPassword"`
	LocalCACert   string `json:"localCACert"`
	LocalCert     string `json:"localCert"`
	LocalKey      string `json:"localKey"`
}

// RegisterFlags binds upstream's flag names.
func (l *LocalSettings) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&l.LocalAddress, "localAddress", l.LocalAddress, "local MQTT broker address")
	fs.StringVar(&l.LocalUsername, "localUsername", l.LocalUsername, "local broker user name")
	fs.StringVar(&l.LocalPassword, "localPassword", l.LocalPassword, "local broker password")
	fs.StringVar(&l.LocalCACert, "localCACert", l.LocalCACert, "PEM CA of the local broker")
	fs.StringVar(&l.LocalCert, "localCert", l.LocalCert, "PEM client certificate for the local broker")
	fs.StringVar(&l.LocalKey, "localKey", l.LocalKey, "PEM client key for the local broker")
}

// Validate requires the local address, as upstream.
func (l *LocalSettings) Validate() error {
	if l.LocalAddress == "" {
		return fmt.Errorf("localAddress must be set: %w", ErrConfig)
	}
	return nil
}

// TLS is the client TLS config for a secure local address, nil otherwise.
func (l *LocalSettings) TLS() (*tls.Config, error) {
	if !mqtt.IsSecure(l.LocalAddress) {
		return nil, nil
	}
	cfg, _, err := TLSConfig(l.LocalCACert, l.LocalCert, l.LocalKey, nil)
	return cfg, err
}

// Clients makes a connector's two clients of the local broker, as
// upstream: "local" (clean session, the last will; statuses go out on it)
// and "cloud" (persistent session that takes local data, so the broker
// queues it while the connector is away). ids names them;
// onLocalConnect runs after each (re)connect of the local client.
func (l *LocalSettings) Clients(ids Env, onLocalConnect func(), log *slog.Logger) (local, cloud *mqtt.Client, err error) {
	tc, err := l.TLS()
	if err != nil {
		return nil, nil, err
	}
	local = mqtt.New(mqtt.Options{
		URL: l.LocalAddress, ClientID: ids.LocalClientID, CleanSession: true, AutoReconnect: true,
		Username: l.LocalUsername, Password: l.LocalPassword, TLS: tc,
		Will: Will(), OnConnect: onLocalConnect, Log: log,
	})
	cloud = mqtt.New(mqtt.Options{
		URL: l.LocalAddress, ClientID: ids.CloudClientID, CleanSession: false, AutoReconnect: true,
		Username: l.LocalUsername, Password: l.LocalPassword, TLS: tc, Log: log,
	})
	return local, cloud, nil
}

// TPMSettings are upstream's TPM key settings: when TPMDevice is set, the
// hub's client certificate (the service's cert) signs with a TPM 2.0 key,
// the blobs TPMKey and TPMKeyPub loaded under the storage key at TPMHandle,
// instead of the key file. Open loads it (tpm.go).
type TPMSettings struct {
	TPMDevice string `json:"tpmDevice"`
	TPMHandle uint64 `json:"tpmHandle"`
	TPMKey    string `json:"tpmKey"`
	TPMKeyPub string `json:"tpmKeyPub"`
}

// RegisterFlags binds upstream's flag names.
func (t *TPMSettings) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&t.TPMDevice, "tpmDevice", t.TPMDevice, "TPM 2.0 device (/dev/tpmrm0) or unix socket; when set, the hub client key is the TPM key and key is not used")
	fs.Uint64Var(&t.TPMHandle, "tpmHandle", t.TPMHandle, "TPM handle of the storage (parent) key of tpmKey, e.g. 0x81000001")
	fs.StringVar(&t.TPMKey, "tpmKey", t.TPMKey, "TPM private key blob (tpm2_create -r)")
	fs.StringVar(&t.TPMKeyPub, "tpmKeyPub", t.TPMKeyPub, "TPM public key blob (tpm2_create -u)")
}

// Validate requires the blobs and a 32-bit parent handle when tpmDevice is
// set.
func (t *TPMSettings) Validate() error {
	if t.TPMDevice == "" {
		return nil
	}
	if t.TPMKey == "" || t.TPMKeyPub == "" {
		return fmt.Errorf("tpmDevice is set: set tpmKey and tpmKeyPub too: %w", ErrConfig)
	}
	if t.TPMHandle == 0 || t.TPMHandle > math.MaxUint32 {
		return fmt.Errorf("tpmHandle %#x is not a TPM handle (e.g. 0x81000001): %w", t.TPMHandle, ErrConfig)
	}
	return nil
}

// BufferSettings are ours (beyond upstream): the disk buffer of messages
// towards the cloud.
type BufferSettings struct {
	BufferFile     string `json:"bufferFile"`
	BufferSize     int64  `json:"bufferSize"`     // bytes
	BufferOverflow string `json:"bufferOverflow"` // drop-oldest | reject-new
}

// DefaultBuffer is a 64 MiB drop-oldest buffer in file.
func DefaultBuffer(file string) BufferSettings {
	return BufferSettings{BufferFile: file, BufferSize: 64 << 20, BufferOverflow: "drop-oldest"}
}

// RegisterFlags binds the buffer flags.
func (b *BufferSettings) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&b.BufferFile, "bufferFile", b.BufferFile, "file of the offline buffer towards the cloud")
	fs.Int64Var(&b.BufferSize, "bufferSize", b.BufferSize, "offline buffer size in bytes")
	fs.StringVar(&b.BufferOverflow, "bufferOverflow", b.BufferOverflow, "when the buffer is full: drop-oldest or reject-new")
}

// Validate checks the size and the policy.
func (b *BufferSettings) Validate() error {
	if b.BufferSize < 64<<10 {
		return fmt.Errorf("bufferSize must be at least 65536 bytes (got %d): %w", b.BufferSize, ErrConfig)
	}
	if _, err := buffer.ParsePolicy(b.BufferOverflow); err != nil {
		return fmt.Errorf("bufferOverflow: %v: %w", err, ErrConfig)
	}
	return nil
}

// Open opens the buffer these settings describe (Validate first).
func (b *BufferSettings) Open() (*buffer.Buffer, error) {
	policy, err := buffer.ParsePolicy(b.BufferOverflow)
	if err != nil {
		return nil, fmt.Errorf("bufferOverflow: %v: %w", err, ErrConfig)
	}
	return buffer.Open(b.BufferFile, b.BufferSize, policy)
}
