package fileupload

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/kantofw/kanto/services/fileupload/files"
	"github.com/kantofw/kanto/services/internal/logging"
)

// ErrConfig marks a configuration the service cannot run with.
var ErrConfig = errors.New("invalid file upload configuration")

// Config holds the upstream keys (JSON names = flag names) plus a few of
// our own, marked below.
type Config struct {
	FeatureID    string   `json:"featureId"`
	Type         string   `json:"type"`
	Context      string   `json:"context"`
	Files        string   `json:"files"`
	Mode         string   `json:"mode"`
	Period       Duration `json:"period"`
	Active       bool     `json:"active"`
	ActiveFrom   string   `json:"activeFrom"`
	ActiveTill   string   `json:"activeTill"`
	Delete       bool     `json:"delete"`
	Checksum     bool     `json:"checksum"`
	SingleUpload bool     `json:"singleUpload"`
	StopTimeout  Duration `json:"stopTimeout"`
	ServerCert   string   `json:"serverCert"`

	Broker   string `json:"broker"`
	Username string `json:"username"`
	Password string `json:"password"`
	CACert   string `json:"caCert"`
	Cert     string `json:"cert"`
	Key      string `json:"key"`

	// Beyond upstream.
	// UploadRate caps the bytes per second of all uploads together; 0 is
	// no cap.
	UploadRate int64 `json:"uploadRate"`
	// PartSize is the S3 part / Azure block size in bytes (0: 16 MiB).
	PartSize int64 `json:"partSize"`
	// RetryTimeout is how long one part may keep failing on a dropped
	// connection before the upload fails.
	RetryTimeout Duration `json:"retryTimeout"`

	logging.Config

	ConfigFile string `json:"-"`
}

// Defaults returns upstream's defaults.
func Defaults() Config {
	return Config{
		FeatureID: "AutoUploadable", Type: "file", Context: "edge", Mode: string(files.Strict),
		Period: Duration(10 * time.Hour), StopTimeout: Duration(30 * time.Second),
		Broker: "tcp://localhost:1883", RetryTimeout: Duration(2 * time.Minute),
		Config: logging.Defaults("log/file-upload.log"),
	}
}

// RegisterFlags binds the upstream flag names to c.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ConfigFile, "configFile", "", "JSON configuration file")
	fs.StringVar(&c.FeatureID, "featureId", c.FeatureID, "feature ID")
	fs.StringVar(&c.Type, "type", c.Type, "type property of the feature")
	fs.StringVar(&c.Context, "context", c.Context, "context property of the feature")
	fs.StringVar(&c.Files, "files", c.Files, "glob of the files to upload")
	fs.StringVar(&c.Mode, "mode", c.Mode, "how a trigger may override files: strict, scoped or lax")
	fs.Var(&c.Period, "period", "period of automatic uploads")
	fs.BoolVar(&c.Active, "active", c.Active, "automatic uploads active at start")
	fs.StringVar(&c.ActiveFrom, "activeFrom", c.ActiveFrom, "start of automatic uploads (RFC 3339)")
	fs.StringVar(&c.ActiveTill, "activeTill", c.ActiveTill, "end of automatic uploads (RFC 3339)")
	fs.BoolVar(&c.Delete, "delete", c.Delete, "delete files after a successful upload")
	fs.BoolVar(&c.Checksum, "checksum", c.Checksum, "send MD5 checksums")
	fs.BoolVar(&c.SingleUpload, "singleUpload", c.SingleUpload, "refuse a trigger while an upload runs")
	fs.Var(&c.StopTimeout, "stopTimeout", "time running uploads get to finish at shutdown")
	fs.StringVar(&c.ServerCert, "serverCert", c.ServerCert, "PEM CA certificate of HTTPS upload servers")
	fs.StringVar(&c.Broker, "broker", c.Broker, "local MQTT broker URL")
	fs.StringVar(&c.Username, "username", c.Username, "MQTT user name")
	fs.StringVar(&c.Password, "password", c.Password, "MQTT password")
	fs.StringVar(&c.CACert, "caCert", c.CACert, "PEM CA certificate of the broker")
	fs.StringVar(&c.Cert, "cert", c.Cert, "PEM client certificate for the broker")
	fs.StringVar(&c.Key, "key", c.Key, "PEM client key for the broker")
	fs.Int64Var(&c.UploadRate, "uploadRate", c.UploadRate, "bytes per second cap of all uploads (0: none)")
	fs.Int64Var(&c.PartSize, "partSize", c.PartSize, "S3 part and Azure block size in bytes (0: 16 MiB)")
	fs.Var(&c.RetryTimeout, "retryTimeout", "how long a dropped connection is retried before an upload fails")
	c.Config.RegisterFlags(fs)
}

// Validate applies upstream's checks and parses the times.
func (c *Config) Validate() (from, till time.Time, err error) {
	mode, err := files.ParseMode(c.Mode)
	if err != nil {
		return from, till, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := (files.Policy{Glob: c.Files, Mode: mode}).Validate(); err != nil {
		return from, till, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.Period <= 0 {
		return from, till, fmt.Errorf("%w: period must be > 0", ErrConfig)
	}
	if (c.Cert == "") != (c.Key == "") {
		return from, till, fmt.Errorf("%w: cert and key must be given together", ErrConfig)
	}
	if c.ActiveFrom != "" {
		if from, err = time.Parse(time.RFC3339, c.ActiveFrom); err != nil {
			return from, till, fmt.Errorf("%w: activeFrom: %w", ErrConfig, err)
		}
	}
	if c.ActiveTill != "" {
		if till, err = time.Parse(time.RFC3339, c.ActiveTill); err != nil {
			return from, till, fmt.Errorf("%w: activeTill: %w", ErrConfig, err)
		}
	}
	if !from.IsZero() && !till.IsZero() && till.Before(from) {
		return from, till, fmt.Errorf("%w: activeTill is before activeFrom", ErrConfig)
	}
	return from, till, c.Config.Validate()
}

// Duration is a time.Duration written "10h" in JSON and on the command
// line; a JSON number counts nanoseconds, as Go's encoding would.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// Set implements flag.Value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON accepts "10h" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		return d.Set(s)
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration must be a string like \"10h\": %w", err)
	}
	*d = Duration(n)
	return nil
}

// MarshalJSON writes the string form.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }
