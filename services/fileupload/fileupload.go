// Package fileupload is the file upload service (`kanto file-upload`): the
// AutoUploadable feature of the edge thing, served over the local broker,
// uploading to HTTP, Amazon S3 and Azure Blob storage.
package fileupload

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kantofw/kanto/services/fileupload/feature"
	"github.com/kantofw/kanto/services/fileupload/files"
	"github.com/kantofw/kanto/services/fileupload/providers"
	"github.com/kantofw/kanto/services/fileupload/providers/azureup"
	"github.com/kantofw/kanto/services/fileupload/providers/httpup"
	"github.com/kantofw/kanto/services/fileupload/providers/s3up"
	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/config"
	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/lifecycle"
	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// Topics of the edge thing handshake and of Ditto commands.
const (
	TopicThingRequest  = "edge/thing/request"
	TopicThingResponse = "edge/thing/response"
	TopicCommands      = "command///req/#"
)

// Main is `kanto file-upload`.
func Main(ctx context.Context, env *cli.Env, args []string) error {
	cfg := Defaults()
	fs := cli.NewFlagSet(env, env.Name)
	cfg.RegisterFlags(fs)
	if err := config.Load(fs, args, "configFile", &cfg); err != nil {
		if errors.Is(err, config.ErrNotFound) {
			fmt.Fprintf(env.Stderr, "warning: %v\n", err)
		} else {
			return cli.Usagef("%v", err)
		}
	}
	if _, _, err := cfg.Validate(); err != nil {
		return cli.Usagef("%v", err)
	}
	log, closer, err := logging.New(cfg.Config, "file-upload", env.Stderr)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	defer closer.Close()
	s, err := New(cfg, log)
	if err != nil {
		return err
	}
	n := lifecycle.NewNotifier(log)
	go n.Watchdog(ctx, nil)
	return s.Run(ctx, n.Ready)
}

// Service connects the feature to the local broker.
type Service struct {
	cfg     Config
	fcfg    feature.Config
	log     *slog.Logger
	limiter *files.Limiter
	tls     *tls.Config

	mu      sync.Mutex
	thing   string // current edge/thing/response payload, normalised
	current *running
	client  *mqtt.Client
}

type running struct {
	f      *feature.Feature
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks cfg and prepares the service.
func New(cfg Config, log *slog.Logger) (*Service, error) {
	from, till, err := cfg.Validate()
	if err != nil {
		return nil, err
	}
	mode, _ := files.ParseMode(cfg.Mode)
	if cfg.Files != "" && !filepath.IsAbs(cfg.Files) {
		// Selected files are absolute; so must be the glob they match.
		abs, err := filepath.Abs(cfg.Files)
		if err != nil {
			return nil, fmt.Errorf("%w: files: %w", ErrConfig, err)
		}
		cfg.Files = abs
	}
	s := &Service{cfg: cfg, log: log, limiter: files.NewLimiter(cfg.UploadRate)}
	s.fcfg = feature.Config{
		FeatureID: cfg.FeatureID, Type: cfg.Type, Context: cfg.Context,
		Policy: files.Policy{Glob: cfg.Files, Mode: mode},
		Period: time.Duration(cfg.Period), Active: cfg.Active, ActiveFrom: from, ActiveTill: till,
		Delete: cfg.Delete, SingleUpload: cfg.SingleUpload, StopTimeout: time.Duration(cfg.StopTimeout),
	}
	if cfg.Cert != "" {
		if s.tls, err = tlsConfig(cfg.CACert, cfg.Cert, cfg.Key); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func tlsConfig(ca, cert, key string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	kp, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("%w: client certificate: %w", ErrConfig, err)
	}
	tc.Certificates = []tls.Certificate{kp}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("%w: caCert: %w", ErrConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: caCert %s holds no certificate", ErrConfig, ca)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// Providers maps storage.provider (case-insensitive, default generic) to
// an uploader.
func (s *Service) Providers(o providers.Options) (feature.Uploader, error) {
	retry := providers.Retry{Timeout: time.Duration(s.cfg.RetryTimeout)}
	switch p := strings.ToLower(strings.TrimSpace(o["storage.provider"])); p {
	case "", "generic":
		return httpup.New(o, httpup.Config{Checksum: s.cfg.Checksum, ServerCert: s.cfg.ServerCert, Retry: retry})
	case "aws":
		return s3up.New(o, s3up.Config{Checksum: s.cfg.Checksum, PartSize: s.cfg.PartSize, Retry: retry})
	case "azure":
		return azureup.New(o, azureup.Config{Checksum: s.cfg.Checksum, BlockSize: s.cfg.PartSize, Retry: retry})
	default:
		return nil, fmt.Errorf("unsupported storage provider '%s': %w", p, providers.ErrInvalidParam)
	}
}

// Run connects to the broker and serves until ctx ends. ready, if not nil,
// is called once connected.
func (s *Service) Run(ctx context.Context, ready func(status string)) error {
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	c := mqtt.New(mqtt.Options{
		URL: s.cfg.Broker, ClientID: "file-upload-" + hex.EncodeToString(id), Username: s.cfg.Username, Password: s.cfg.Password,
		TLS: s.tls, CleanSession: true, KeepAlive: 30 * time.Second, AutoReconnect: true, Log: s.log,
		OnConnect: func() { s.requestThing() },
	})
	s.mu.Lock()
	s.client = c
	s.mu.Unlock()
	defer c.Close()
	if err := c.Subscribe(ctx, TopicThingResponse, 1, s.onThing(ctx)); err != nil {
		return err
	}
	if err := c.Subscribe(ctx, TopicCommands, 1, s.onCommand); err != nil {
		return err
	}
	for {
		err := c.Connect(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, mqtt.ErrNotAuthenticated) || errors.Is(err, mqtt.ErrNotAuthorized) {
			return err
		}
		s.log.Warn("broker not reachable, retrying", "broker", s.cfg.Broker, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	if ready != nil {
		ready("connected to " + s.cfg.Broker)
	}
	<-ctx.Done()
	s.stopFeature()
	return nil
}

// requestThing asks the connector for the thing identity (empty payload).
func (s *Service) requestThing() {
	s.mu.Lock()
	c := s.client
	s.mu.Unlock()
	ch := c.PublishAsync(mqtt.Message{Topic: TopicThingRequest, QoS: 1})
	go func() {
		if err := <-ch; err != nil {
			s.log.Warn("edge thing request failed", "err", err)
		}
	}()
}

// ErrThing marks an edge/thing/response payload that cannot be used.
var ErrThing = errors.New("invalid edge thing response")

// ParseThing parses the connector's edge/thing/response payload
// {"deviceId":"ns:name","tenantId":..,"policyId":..}. key identifies the
// response, so an identical one changes nothing.
func ParseThing(payload []byte) (thing feature.Thing, key string, err error) {
	var ti struct {
		DeviceID string `json:"deviceId"`
		TenantID string `json:"tenantId"`
		PolicyID string `json:"policyId"`
	}
	if err := json.Unmarshal(payload, &ti); err != nil {
		return thing, "", fmt.Errorf("%w: %v", ErrThing, err)
	}
	ns, name, err := ditto.SplitID(ti.DeviceID)
	if err != nil {
		return thing, "", fmt.Errorf("%w: %w", ErrThing, err)
	}
	return feature.Thing{Namespace: ns, Name: name, TenantID: ti.TenantID}, ti.DeviceID + "\x00" + ti.TenantID + "\x00" + ti.PolicyID, nil
}

// onThing (re)activates the feature when the thing identity changes.
func (s *Service) onThing(root context.Context) mqtt.Handler {
	return func(_ context.Context, m mqtt.Message) {
		thing, key, err := ParseThing(m.Payload)
		if err != nil {
			s.log.Warn("bad edge thing response", "err", err)
			return
		}
		s.mu.Lock()
		same := key == s.thing
		s.thing = key
		s.mu.Unlock()
		if same {
			return
		}
		s.stopFeature()
		f := feature.New(s.fcfg, thing, publisher{s}, s.Providers, s.limiter, s.log)
		ctx, cancel := context.WithCancel(root)
		r := &running{f: f, cancel: cancel, done: make(chan struct{})}
		s.mu.Lock()
		s.current = r
		s.mu.Unlock()
		// Owned by the service; ends when the thing changes or Run ends.
		go func() {
			defer close(r.done)
			if err := f.Run(ctx); err != nil {
				s.log.Error("feature stopped", "err", err)
			}
		}()
		s.log.Info("feature activated", "thing", thing.ID(), "feature", s.fcfg.FeatureID)
	}
}

func (s *Service) stopFeature() {
	s.mu.Lock()
	r := s.current
	s.current = nil
	s.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
}

func (s *Service) onCommand(ctx context.Context, m mqtt.Message) {
	s.mu.Lock()
	r := s.current
	s.mu.Unlock()
	if r != nil {
		r.f.Handle(ctx, m.Topic, m.Payload)
	}
}

// publisher adapts the MQTT client to feature.Publisher (QoS 1).
type publisher struct{ s *Service }

func (p publisher) Publish(ctx context.Context, topic string, payload []byte) error {
	p.s.mu.Lock()
	c := p.s.client
	p.s.mu.Unlock()
	return c.Publish(ctx, mqtt.Message{Topic: topic, Payload: payload, QoS: 1})
}
