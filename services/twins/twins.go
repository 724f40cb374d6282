// Package twins is local-digital-twins: a replacement of the suite
// connector that keeps the device's digital twins locally (on bbolt), answers
// twin commands of local apps itself, and synchronises with the cloud's
// twins (Ditto through a Hono MQTT adapter) whenever the connection comes
// back. Wire-compatible with Eclipse Kanto's local-digital-twins.
//
// Beyond upstream: telemetry, non-twin events and command responses towards
// the cloud go through the same disk-persisted bounded buffer as the suite
// connector (package buffer), so nothing published while offline is lost;
// deleting a thing really deletes it (and the delete reaches the cloud on
// the next sync); "connected" in edge/connection/remote/status means the
// cloud is connected; a thing without features sends no null retrieve on
// sync; a thing changed as a whole while offline is sent whole (upstream
// only sent features); refused credentials are retried with the backoff
// (upstream gave up at once and stayed local-only); the cloud's answer to
// the sync's retrieve is awaited for SyncTimeout, then local changes go up
// anyway. Telemetry and events go to Hono's normalised topics
// (event/<tenant>/<thing>), which Hono treats as upstream's e and
// e/<tenant>/<thing>.
//
// The provisioning file is watched as by the suite connector (package
// uplink's ProvisioningWatcher): on a change the hub session ends
// (CONNECTION_CLOSED), the file is merged again over the configuration
// (explicitly given flags still win), PROVISIONING_UPDATE is sent and a new
// session connects with the new settings. A missing file whose absence
// leaves the settings incomplete gives PROVISIONING_MISSING, a file that
// cannot be read or used PROVISIONING_ERROR; either way the service stays
// local-only with the identity it had until the file changes again. The
// local twins, the local API and the offline buffer keep working
// throughout.
//
// First boot (the factory writes the provisioning file after the image
// first boots): with a provisioning file configured, a missing or unusable
// identity does not stop the start, as in the suite connector. The service
// connects to the local broker, tells systemd it is ready, and its first
// launch reports PROVISIONING_MISSING (no file) or PROVISIONING_ERROR (a
// file that cannot be read or leaves the settings invalid) on
// edge/connection/remote/status, then waits for the file. Once a change of
// the file makes the settings valid, the twin database of that device is
// opened and the service goes on as a relaunch does (CONNECTION_CLOSED,
// PROVISIONING_UPDATE, hub connect, sync), exactly the connector's
// statuses. Errors the file cannot fix (log, local broker, TPM, twin
// database path, buffer: Settings.ValidateStatic; a local broker TLS
// setup that fails; a buffer that does not open) still fail the start, and
// so does a missing identity without a provisioning file.
//
// While there is no identity there is no twin database, so local twin
// commands cannot be served. They are not buffered for later, as that
// would apply them to the cloud's twin and not to the local one. Upstream's
// launcher builds its local "cloud" client only once the settings apply
// (reference §1.6, §2.7), so there a local app gets no answer at all; ours
// answers, so that an app waiting for a response can retry: a command that
// needs the twins is dropped (one log line each) and, when a response is
// required, answered with upstream's "unknown" error (status 400, "Thing
// storage unavailable: …", description "… Try it later."), on the local
// topic of the thing (command//<id>/req//errors-response;
// command///req//… for a deviceId given in the configuration). As at any
// time, a value that is not JSON gets
// json.invalid, and commands the twins do not apply (unsupported paths and
// actions) and every non-twin message go to the offline buffer, as in the
// suite connector while it waits, and reach the cloud under the identity
// that comes. Thing info (edge/thing/request) gets no answer until the
// identity is known, as in the suite connector.
//
// A new deviceId in the provisioning file is a new device: as at startup
// (and as upstream, whose launcher reopens the database on every relaunch),
// the previous device's database is kept aside as <thingsDb>.<old id> and a
// fresh one is opened, so the old device's twins and their unsynchronised
// changes never reach the cloud under the new identity. Twin commands hold
// the identity for their whole run, so a command is applied to one
// device's database. Messages in the offline buffer carry no identity (the
// local topics of the device itself have none) and go up under the new
// one. Should the new database not open, the service stays with the
// previous device and reports PROVISIONING_ERROR.
//
// Goroutines: Run owns the local clients' subscription goroutines (package
// mqtt), the intake, the announcer, the provisioning watcher and one launch
// at a time; a launch owns its hub sessions, a hub session its sender and
// its synchronisation. All end with Run's context.
package twins

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
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kantofw/kanto/services/internal/buffer"
	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/hono"
	"github.com/kantofw/kanto/services/internal/lifecycle"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/subtrack"
	"github.com/kantofw/kanto/services/internal/tpmkey"
	"github.com/kantofw/kanto/services/internal/uplink"
)

// Options are what Run needs besides the context.
type Options struct {
	// Settings are the configuration without the provisioning file
	// (defaults, config file, flags): Run merges the file on top at start
	// and again whenever it changes.
	Settings Settings
	// Reapply re-applies the command-line flags that were given explicitly,
	// on top of the provisioning file (upstream's precedence); may be nil.
	Reapply  func(*Settings)
	Env      uplink.Env
	Log      *slog.Logger
	Notifier *lifecycle.Notifier
	Now      func() time.Time
	// SyncDelay is the wait after a hub connect before synchronising
	// (upstream: 2 s).
	SyncDelay time.Duration
	// SyncTimeout bounds the wait for the cloud's answer to a desired
	// properties retrieve; local changes go up after it either way.
	SyncTimeout time.Duration
	// ProvisioningTick coalesces provisioning file events; default 3 s.
	ProvisioningTick time.Duration
}

// Service is one local-digital-twins instance.
type Service struct {
	o   Options
	log *slog.Logger
	// cur holds the settings of the current launch (Options.Settings with
	// the provisioning file merged); replaced, never changed, on a relaunch.
	cur atomic.Pointer[Settings]
	// idMu guards the identity (cur's deviceId) and the twin store that
	// belongs to it: twin commands hold it for reading, a relaunch that
	// changes the device id holds it to swap the store.
	idMu   sync.RWMutex
	things *thingStore
	buf    *buffer.Buffer
	intake *uplink.Intake
	local  *mqtt.Client // "connector": status, LWT
	cloud  *mqtt.Client // "cloud": local data in, responses and events out
	out    publisher    // where twin responses and events go (s.cloud)
	status *uplink.StatusPublisher
	corr   uplink.Correlations
	subs   *subtrack.Tracker
	tpm    *tpmkey.Key // the hub client key when tpmDevice is set, else nil

	mu      sync.Mutex // serialises twin commands and sync writes
	hubMu   sync.Mutex
	hub     *mqtt.Client
	online  atomic.Bool
	pending map[string]chan *ditto.Envelope // sync retrieves by correlation id
}

// publisher sends a message locally; *mqtt.Client implements it.
type publisher interface {
	Publish(ctx context.Context, m mqtt.Message) error
}

var _ publisher = (*mqtt.Client)(nil)

// New prepares a service; Run starts it.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Notifier == nil {
		o.Notifier = lifecycle.NewNotifier(o.Log)
	}
	if o.SyncDelay == 0 {
		o.SyncDelay = 2 * time.Second
	}
	if o.SyncTimeout == 0 {
		o.SyncTimeout = 10 * time.Second
	}
	s := &Service{o: o, log: o.Log, pending: map[string]chan *ditto.Envelope{},
		subs: subtrack.New(o.Env.LocalClientID, o.Env.CloudClientID)}
	st := o.Settings // until Run merges the provisioning file
	s.cur.Store(&st)
	return s
}

// settings returns the settings of the current launch.
func (s *Service) settings() *Settings { return s.cur.Load() }

// Run runs until ctx ends; it returns nil on cancellation. Without a usable
// identity it returns an error only when no provisioning file is
// configured; otherwise it starts without a twin database and waits for the
// file (see the package doc).
func (s *Service) Run(ctx context.Context) error {
	if err := s.o.Settings.ValidateStatic(); err != nil {
		return err
	}
	st := s.o.Settings
	_, err := provision(&st, s.o.Reapply)
	if err == nil {
		err = st.Validate()
	}
	if err != nil {
		if st.ProvisioningFile == "" {
			return err
		}
		// No usable identity yet: start without a twin database; the
		// first launch reports why and waits for the provisioning file.
		st = s.o.Settings
	}
	identified := err == nil
	s.cur.Store(&st)
	// The TPM key is checked against cert now, not at the first handshake.
	tpm, err := st.TPMSettings.Open(st.Cert, s.log)
	if err != nil {
		return err
	}
	if tpm != nil {
		defer tpm.Close()
	}
	s.tpm = tpm
	if identified {
		things, err := openStore(st.ThingsDB, st.DeviceID, s.o.Now)
		if err != nil {
			return fmt.Errorf("things database: %w", err)
		}
		s.things = things
	}
	defer func() {
		s.idMu.Lock()
		defer s.idMu.Unlock()
		if s.things != nil {
			s.things.close()
		}
	}()
	buf, err := st.BufferSettings.Open()
	if err != nil {
		return fmt.Errorf("offline buffer: %w", err)
	}
	s.buf = buf
	defer buf.Close()
	s.intake = uplink.NewIntake(buf, s.log)

	s.local, s.cloud, err = st.LocalSettings.Clients(s.o.Env, func() { go s.status.Republish(ctx) }, s.log)
	if err != nil {
		return err
	}
	s.status = &uplink.StatusPublisher{Client: s.local, Now: s.o.Now}
	s.out = s.cloud
	defer s.cloud.Close()
	defer s.local.Close()
	data := slices.Concat(hono.EventFilters, hono.TelemetryFilters, hono.ResponseFilters)
	if err := s.cloud.SubscribeDeferred(ctx, data, 1, s.onLocal); err != nil {
		return err
	}
	if err := s.cloud.Subscribe(ctx, uplink.TopicThingRequest, 0, func(ctx context.Context, _ mqtt.Message) { s.announce(ctx) }); err != nil {
		return err
	}
	if err := s.local.Subscribe(ctx, subtrack.Filter, 0, s.onSysLog); err != nil {
		return err
	}
	s.log.Info("connecting to the local broker", "localAddress", st.LocalAddress)
	for _, c := range []*mqtt.Client{s.local, s.cloud} {
		if err := c.ConnectRetry(ctx); err != nil {
			return nil // cancelled
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() { defer wg.Done(); s.intake.Run(ctx) }()
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-time.After(s.o.Env.AnnounceDelay):
			s.announce(ctx)
		}
	}()
	// Without a provisioning file name there is nothing to watch (upstream
	// reports CONFIG_ERROR and stays local-only); the settings as given
	// are used for good.
	var changes <-chan struct{}
	if st.ProvisioningFile != "" {
		watch, err := uplink.WatchProvisioning(st.ProvisioningFile, s.o.ProvisioningTick, s.log)
		if err != nil {
			s.status.Send(ctx, uplink.CauseConfigError)
			return fmt.Errorf("provisioning watcher: %w", err)
		}
		defer watch.Close()
		changes = watch.C
	}
	s.o.Notifier.Ready("local broker connected")
	go s.o.Notifier.Watchdog(ctx, s.local.IsConnected)
	defer s.o.Notifier.Stopping()
	uplink.Relaunch(ctx, changes, s.launch, s.log, st.ProvisioningFile)
	return nil
}

// launch runs one hub session with the settings of this moment; on a
// relaunch, or while the service has no device identity yet, it first
// merges the provisioning file again. The local side (twins, local API,
// buffer) is not touched: it works whatever the hub.
//
// The statuses follow the suite connector's launch: PROVISIONING_MISSING
// (no file) or PROVISIONING_ERROR (a file that cannot be used) and a wait
// for the next change of the file; PROVISIONING_UPDATE before connecting
// on a relaunch; CONNECTION_CLOSED at the end of every launch.
func (s *Service) launch(ctx context.Context, relaunch bool) {
	// Every launch ends with CONNECTION_CLOSED, as upstream's launcher stop.
	defer s.status.Send(context.WithoutCancel(ctx), uplink.CauseConnectionClosed)
	if identified := s.identified(); relaunch || !identified {
		next := s.o.Settings
		found, err := provision(&next, s.o.Reapply)
		if err == nil {
			err = next.Validate()
		}
		if err != nil {
			cause := uplink.CauseProvisioningError
			if !found {
				cause = uplink.CauseProvisioningMissing
			}
			if identified {
				s.log.Error("cannot use the provisioning file; the twins stay local until it changes", "err", err,
					"provisioningFile", next.ProvisioningFile)
			} else {
				s.log.Error("settings incomplete; waiting for a provisioning file", "err", err,
					"provisioningFile", next.ProvisioningFile)
			}
			s.status.Send(ctx, cause)
			<-ctx.Done()
			return
		}
		if err := s.adopt(next); err != nil {
			s.log.Error("cannot switch to the provisioned device; the twins stay local until the file changes", "err", err)
			s.status.Send(ctx, uplink.CauseProvisioningError)
			<-ctx.Done()
			return
		}
		if relaunch {
			s.status.Send(ctx, uplink.CauseProvisioningUpdate)
		}
		if !identified {
			s.announce(ctx) // as a start announces, whatever the hub
		}
	}
	s.hubLoop(ctx)
}

// identified reports whether the service has a device identity, and so a
// twin database.
func (s *Service) identified() bool {
	s.idMu.RLock()
	defer s.idMu.RUnlock()
	return s.things != nil
}

// adopt makes next the settings of the running service. The first identity
// (the service started without one) opens its twin database; a new device
// id gets its own twin database, as at startup: the previous device's is
// kept aside and a fresh one opened (see the package doc).
func (s *Service) adopt(next Settings) error {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	cur := s.settings()
	if s.things == nil {
		things, err := openStore(next.ThingsDB, next.DeviceID, s.o.Now)
		if err != nil {
			return fmt.Errorf("things database of %s: %w", next.DeviceID, err)
		}
		s.log.Info("device identity known: twin database opened", "deviceId", next.DeviceID, "thingsDb", next.ThingsDB)
		s.things = things
		s.cur.Store(&next)
		return nil
	}
	if next.DeviceID == cur.DeviceID && next.ThingsDB == cur.ThingsDB {
		s.cur.Store(&next)
		return nil
	}
	s.things.close()
	things, err := openStore(next.ThingsDB, next.DeviceID, s.o.Now)
	if err != nil {
		// Back to the previous device: its database was not moved.
		back, berr := openStore(cur.ThingsDB, cur.DeviceID, s.o.Now)
		if berr != nil {
			s.log.Error("twin database lost: local twin commands fail until a restart", "err", berr)
			return errors.Join(err, berr)
		}
		s.things = back
		return fmt.Errorf("things database of %s: %w", next.DeviceID, err)
	}
	s.log.Warn("device id changed: the twins of the previous device are kept aside; a fresh twin database is used",
		"previous", cur.DeviceID, "deviceId", next.DeviceID, "thingsDb", next.ThingsDB)
	s.things = things
	s.cur.Store(&next)
	return nil
}

// thingInfo is the payload of edge/thing/response.
type thingInfo struct {
	DeviceID string `json:"deviceId"`
	TenantID string `json:"tenantId"`
	PolicyID string `json:"policyId,omitempty"`
}

// announce publishes the thing info; nothing without a device identity
// (as the suite connector, which answers only once a launch knows it).
func (s *Service) announce(ctx context.Context) {
	if !s.identified() {
		return
	}
	st := s.settings()
	info, _ := json.Marshal(thingInfo{DeviceID: st.DeviceID, TenantID: st.TenantID, PolicyID: st.PolicyID})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.local.Publish(pctx, mqtt.Message{Topic: uplink.TopicThingReply, Payload: info, QoS: 1}); err != nil {
		s.log.Warn("thing info not published", "err", err)
	}
}

// hubLoop keeps a hub session up with upstream's backoff until ctx ends.
func (s *Service) hubLoop(ctx context.Context) {
	st := s.settings()
	var tlsCfg *tls.Config
	var leaf *x509.Certificate
	var err error
	if mqtt.IsSecure(st.Address) {
		tlsCfg, leaf, err = uplink.HubTLS(st.CACert, st.Cert, st.Key, s.tpm, nil)
	}
	if err != nil {
		s.log.Error("hub connection cannot be created", "err", err)
		s.status.Send(ctx, uplink.CauseConnectionError)
		<-ctx.Done()
		return
	}
	clientID := st.ClientID
	if clientID == "" {
		clientID = randomID()
	}
	opts := mqtt.Options{URL: st.Address, ClientID: clientID, CleanSession: false, TLS: tlsCfg, Log: s.log}
	if leaf == nil {
		opts.Username, opts.Password = st.Username, st.Password
		if opts.Username == "" && st.AuthID != "" {
			opts.Username = hono.Username(st.AuthID, st.TenantID)
		}
	}
	s.log.Info("connecting to the hub", "address", st.Address, "deviceId", st.DeviceID, "tenantId", st.TenantID, "clientId", clientID)
	bo := &uplink.Backoff{Env: s.o.Env}
	sender := &uplink.Sender{Buf: s.buf, Route: s.route, Log: s.log}
	authFails := 0
	for {
		lost := make(chan error, 1)
		opts.OnConnectionLost = func(err error) {
			select {
			case lost <- err:
			default:
			}
		}
		hub := mqtt.New(opts)
		_ = hub.Subscribe(ctx, hono.RequestFilter, 0, s.onCommand)
		// Local apps' device command subscriptions, mirrored (commands on
		// them are handled by the wildcard's handler).
		for _, f := range s.subs.Filters() {
			_ = hub.Subscribe(ctx, f, 0, func(context.Context, mqtt.Message) {})
		}
		err := hub.Connect(ctx)
		if ctx.Err() != nil {
			hub.Close()
			return
		}
		if err == nil {
			authFails = 0
			bo.Reset()
			err = s.session(ctx, hub, sender, lost)
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("hub connection lost", "err", err)
			s.o.Notifier.Status("hub disconnected")
		} else {
			s.log.Warn("hub connect failed", "err", err)
			hub.Close()
		}
		s.status.Send(ctx, uplink.CauseOf(err))
		if errors.Is(err, mqtt.ErrNotAuthenticated) || errors.Is(err, mqtt.ErrNotAuthorized) {
			authFails++
			if authFails >= s.o.Env.AuthRetries {
				// Unlike upstream (which gives up at once) keep trying, with
				// the longest backoff: a maintenance window of the cloud must
				// not leave the device offline for good.
				s.log.Error("hub refused the credentials", "attempts", authFails, "err", err)
			}
		}
		wait := bo.Next()
		s.log.Info("reconnecting to the hub", "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// session runs one hub connection: status, sender and sync.
func (s *Service) session(ctx context.Context, hub *mqtt.Client, sender *uplink.Sender, lost <-chan error) error {
	s.hubMu.Lock()
	s.hub = hub
	s.hubMu.Unlock()
	s.online.Store(true)
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		s.online.Store(false)
		cancel()
		wg.Wait()
		s.hubMu.Lock()
		s.hub = nil
		s.hubMu.Unlock()
		hub.Close()
		s.corr.Clear()
		s.forgetPending()
	}()
	s.status.Send(ctx, "")
	s.announce(ctx)
	s.log.Info("hub connected", "address", s.settings().Address)
	s.o.Notifier.Status("hub connected")
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-sctx.Done():
			return
		case <-time.After(s.o.SyncDelay):
		}
		if err := s.synchronize(sctx, hub); err != nil && sctx.Err() == nil {
			s.log.Warn("synchronisation incomplete; retried on the next connect", "err", err)
		}
	}()
	return sender.Send(sctx, hub, lost)
}

// onSysLog follows local command subscriptions and mirrors them on the hub.
func (s *Service) onSysLog(ctx context.Context, m mqtt.Message) {
	ch := s.subs.Handle(m.Topic, m.Payload)
	if len(ch.Subscribe) == 0 && len(ch.Unsubscribe) == 0 {
		return
	}
	s.hubMu.Lock()
	hub := s.hub
	s.hubMu.Unlock()
	if hub == nil {
		return // the next hub session subscribes from the tracker
	}
	for _, f := range ch.Subscribe {
		if err := hub.Subscribe(ctx, f, 0, func(context.Context, mqtt.Message) {}); err != nil {
			s.log.Warn("hub subscribe failed", "filter", f, "err", err)
		}
	}
	if len(ch.Unsubscribe) > 0 {
		if err := hub.Unsubscribe(ctx, ch.Unsubscribe...); err != nil {
			s.log.Warn("hub unsubscribe failed", "filters", ch.Unsubscribe, "err", err)
		}
	}
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// route maps a buffered message to the hub: telemetry and events to
// Hono's normalised topics (as the suite connector), responses to
// command//<dev>/res/…, forwarded twin commands as they were stored.
func (s *Service) route(e *buffer.Entry) ([]mqtt.Message, error) {
	if c, err := hono.ParseCommand(e.Topic); err == nil && c.Response {
		c.Short, c.Tenant = false, ""
		return []mqtt.Message{{Topic: c.Long(), Payload: e.Payload, QoS: e.QoS}}, nil
	}
	return []mqtt.Message{{Topic: hono.ParseData(e.Topic).CloudTopic(s.settings().TenantID, s.settings().DeviceID), Payload: e.Payload, QoS: e.QoS}}, nil
}
