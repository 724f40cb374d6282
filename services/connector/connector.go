// Package connector is the suite connector: it links the device's local
// Mosquitto to a Hono (or generic MQTT) hub, wire-compatible with Eclipse
// Kanto's suite-connector.
//
// Beyond upstream, messages towards the cloud go through a disk-persisted,
// bounded buffer (package buffer) instead of relying on the broker's
// in-memory session: a message is acknowledged to the local broker only
// once it is fsynced to the buffer, and removed from the buffer only once
// the hub acknowledged it. So nothing is lost on a first boot without
// network, a connector kill -9, or a broker restart; delivery is
// at-least-once and in order per topic.
//
// The building blocks it shares with the other cloud connectors live in
// package uplink (intake, sender, status, backoff) and subtrack ($SYS
// subscription tracking).
//
// Goroutines: Run owns the local clients' subscription goroutines (package
// mqtt), the intake, the stats publisher and one launch at a time; a
// launch owns its hub client and sender. All end when Run's context ends.
package connector

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
	"github.com/kantofw/kanto/services/internal/hono"
	"github.com/kantofw/kanto/services/internal/lifecycle"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/subtrack"
	"github.com/kantofw/kanto/services/internal/tpmkey"
	"github.com/kantofw/kanto/services/internal/uplink"
)

// Options are what Run needs besides the context.
type Options struct {
	Settings Settings
	// Reapply re-applies the command-line flags that were given explicitly,
	// on top of the provisioning file (upstream's precedence).
	Reapply  func(*Settings)
	Env      Env
	Log      *slog.Logger
	Notifier *lifecycle.Notifier
	Now      func() time.Time
	// Window is how many messages may be in flight to the hub; default 256.
	Window int
	// ProvisioningTick coalesces provisioning file events; default 3 s.
	ProvisioningTick time.Duration
}

// Connector is one suite connector.
type Connector struct {
	o      Options
	log    *slog.Logger
	buf    *buffer.Buffer
	local  *mqtt.Client // "connector": status, thing info, $SYS, LWT
	cloud  *mqtt.Client // "cloud": local data in, commands out
	status *uplink.StatusPublisher
	subs   *subtrack.Tracker
	corr   uplink.Correlations
	dups   *dedupe
	intake *uplink.Intake
	sender *uplink.Sender

	tpm *tpmkey.Key // the hub client key when tpmDevice is set, else nil

	hubOnline atomic.Bool
	mu        sync.Mutex
	hub       *mqtt.Client // mirrors local command subscriptions; nil offline and in generic mode
	info      []byte       // edge/thing/response payload of the current launch
}

// thingInfo is the payload of edge/thing/response.
type thingInfo struct {
	DeviceID string `json:"deviceId"`
	TenantID string `json:"tenantId"`
	PolicyID string `json:"policyId,omitempty"`
}

// New prepares a connector; Run starts it.
func New(o Options) *Connector {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Window <= 0 {
		o.Window = 256
	}
	if o.ProvisioningTick <= 0 {
		o.ProvisioningTick = uplink.DefaultProvisioningTick
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Notifier == nil {
		o.Notifier = lifecycle.NewNotifier(o.Log)
	}
	return &Connector{
		o:    o,
		log:  o.Log,
		subs: subtrack.New(o.Env.LocalClientID, o.Env.CloudClientID),
		dups: &dedupe{now: o.Now, seen: map[string]time.Time{}},
	}
}

// Run runs until ctx ends. It returns nil on cancellation.
func (c *Connector) Run(ctx context.Context) error {
	s := c.o.Settings
	// The TPM key is checked against cert now, not at the first handshake.
	tpm, err := s.TPMSettings.Open(s.Cert, c.log)
	if err != nil {
		return err
	}
	if tpm != nil {
		defer tpm.Close()
	}
	c.tpm = tpm
	buf, err := s.BufferSettings.Open()
	if err != nil {
		return fmt.Errorf("offline buffer: %w", err)
	}
	c.buf = buf
	defer buf.Close()
	c.intake = uplink.NewIntake(buf, c.log)
	c.sender = &uplink.Sender{Buf: buf, Window: c.o.Window, Log: c.log}
	if st := buf.Stats(); st.Messages > 0 {
		c.log.Info("offline buffer holds messages from before", "messages", st.Messages, "bytes", st.Bytes)
	}

	c.local, c.cloud, err = s.LocalSettings.Clients(c.o.Env.Env, func() { go c.status.Republish(ctx) }, c.log)
	if err != nil {
		return err
	}
	c.status = &uplink.StatusPublisher{Client: c.local, Now: c.o.Now}
	defer c.cloud.Close()
	defer c.local.Close()

	// One subscription for all local data: the buffer then holds it in the
	// order the broker sent it, and acknowledgements go back in that order.
	data := slices.Concat(hono.EventFilters, hono.TelemetryFilters, hono.ResponseFilters)
	if err := c.cloud.SubscribeDeferred(ctx, data, 1, c.onLocal); err != nil {
		return err
	}
	if err := c.cloud.Subscribe(ctx, TopicThingRequest, 0, c.onThingRequest); err != nil {
		return err
	}
	// The tracker runs in every mode, as upstream's; whether a launch mirrors
	// the subscriptions on the hub depends on its settings (generic mode
	// does not).
	if err := c.local.Subscribe(ctx, subtrack.Filter, 0, c.onSysLog); err != nil {
		return err
	}
	c.log.Info("connecting to the local broker", "localAddress", s.LocalAddress)
	if err := c.local.ConnectRetry(ctx); err != nil {
		return nil // cancelled
	}
	if err := c.cloud.ConnectRetry(ctx); err != nil {
		return nil
	}

	// Before the goroutines below, which end only with ctx: a watcher
	// error must end Run (upstream exits with CONFIG_ERROR).
	watch, err := uplink.WatchProvisioning(s.ProvisioningFile, c.o.ProvisioningTick, c.log)
	if err != nil {
		c.status.Send(ctx, CauseConfigError)
		return fmt.Errorf("provisioning watcher: %w", err)
	}
	defer watch.Close()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.intake.Run(ctx) }()
	go func() { defer wg.Done(); c.publishStats(ctx) }()
	defer wg.Wait()

	c.o.Notifier.Ready("local broker connected")
	go c.o.Notifier.Watchdog(ctx, c.local.IsConnected)
	defer c.o.Notifier.Stopping()

	uplink.Relaunch(ctx, watch.C, c.launch, c.log, s.ProvisioningFile)
	return nil
}

// launch runs one hub session with the settings of this moment.
func (c *Connector) launch(ctx context.Context, relaunch bool) {
	// Every launch ends with CONNECTION_CLOSED, as upstream's launcher stop.
	defer c.status.Send(context.WithoutCancel(ctx), CauseConnectionClosed)
	s := c.o.Settings
	found, err := applyProvisioning(s.ProvisioningFile, &s)
	if c.o.Reapply != nil {
		c.o.Reapply(&s)
	}
	if err != nil {
		c.log.Error("cannot use the provisioning file", "err", err)
		c.status.Send(ctx, CauseProvisioningError)
		<-ctx.Done()
		return
	}
	if relaunch {
		c.status.Send(ctx, CauseProvisioningUpdate)
	}
	tlsCfg, leaf, err := c.hubTLS(&s)
	if err == nil && s.DeviceIDPattern != "" {
		s.DeviceID, err = resolvePattern(s.DeviceIDPattern, leaf)
	}
	if err != nil {
		c.log.Error("hub connection cannot be created", "err", err)
		c.status.Send(ctx, CauseConnectionError)
		<-ctx.Done()
		return
	}
	if err := s.ValidateDynamic(); err != nil {
		cause := CauseProvisioningError
		if !found {
			cause = CauseProvisioningMissing
		}
		c.log.Error("settings incomplete; waiting for a provisioning file", "err", err, "provisioningFile", s.ProvisioningFile)
		c.status.Send(ctx, cause)
		<-ctx.Done()
		return
	}
	generic := s.GenericMode()
	rt := routes{tenant: s.TenantID, device: s.DeviceID, generic: generic, env: c.o.Env}
	info, _ := json.Marshal(thingInfo{DeviceID: s.DeviceID, TenantID: s.TenantID, PolicyID: s.PolicyID})

	clientID := s.ClientID
	if clientID == "" {
		clientID = randomID()
	}
	opts := mqtt.Options{URL: s.Address, ClientID: clientID, CleanSession: false, TLS: tlsCfg, Log: c.log}
	if leaf == nil {
		opts.Username, opts.Password = s.Username, s.Password
		if opts.Username == "" && s.AuthID != "" {
			opts.Username = hono.Username(s.AuthID, s.TenantID)
		}
		if tlsCfg == nil && opts.Username != "" {
			c.log.Warn("credentials are sent without TLS", "address", s.Address)
		}
	}
	cmdFilter := hono.RequestFilter
	if generic {
		cmdFilter = "command/" + s.TenantID + "/" + s.DeviceID + "/+/req/#"
	}
	handler := func(ctx context.Context, m mqtt.Message) { c.onCommand(ctx, rt, m) }
	// A fresh paho client per connection: paho would otherwise re-send its
	// own in-flight messages on reconnect, ahead of (and out of order with)
	// the buffer, which is the one source of what is still to be sent.
	lost := make(chan error, 1)
	newHub := func() *mqtt.Client {
		opts.OnConnectionLost = func(err error) {
			select {
			case lost <- err:
			default:
			}
		}
		hub := mqtt.New(opts)
		_ = hub.Subscribe(ctx, cmdFilter, 0, handler)
		if generic {
			return hub // no mirroring of local command subscriptions
		}
		for _, f := range c.subs.Filters() {
			_ = hub.Subscribe(ctx, f, 0, func(context.Context, mqtt.Message) {})
		}
		c.mu.Lock()
		c.hub = hub
		c.mu.Unlock()
		return hub
	}
	c.mu.Lock()
	c.info = info
	c.mu.Unlock()
	var hub *mqtt.Client
	defer func() {
		c.mu.Lock()
		c.hub = nil
		c.mu.Unlock()
		c.hubOnline.Store(false)
		if hub != nil {
			hub.Close()
		}
		c.corr.Clear()
	}()

	c.log.Info("connecting to the hub", "address", s.Address, "deviceId", s.DeviceID, "tenantId", s.TenantID,
		"clientId", clientID, "generic", generic)
	bo := &uplink.Backoff{Env: c.o.Env.Env}
	authFails := 0
	for {
		if hub != nil {
			hub.Close()
		}
		select {
		case <-lost:
		default:
		}
		hub = newHub()
		err := hub.Connect(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			authFails = 0
			bo.Reset()
			c.hubOnline.Store(true)
			c.status.Send(ctx, "")
			c.announce(ctx)
			c.log.Info("hub connected", "address", s.Address)
			c.o.Notifier.Status("hub connected")
			err = c.send(ctx, hub, rt, lost)
			c.hubOnline.Store(false)
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("hub connection lost", "err", err)
			c.o.Notifier.Status("hub disconnected")
		} else {
			c.log.Warn("hub connect failed", "err", err)
		}
		c.status.Send(ctx, uplink.CauseOf(err))
		switch {
		case errors.Is(err, mqtt.ErrNotAuthenticated), errors.Is(err, mqtt.ErrNotAuthorized):
			authFails++
			if authFails >= c.o.Env.AuthRetries {
				c.log.Error("hub refused the credentials; giving up until the provisioning file changes",
					"attempts", authFails, "err", err)
				c.status.Send(ctx, CauseConnectionClosed)
				<-ctx.Done()
				return
			}
		case errors.Is(err, mqtt.ErrIDRejected), errors.Is(err, mqtt.ErrBadProtocol):
			c.log.Error("hub refused the connection; giving up until the provisioning file changes", "err", err)
			c.status.Send(ctx, CauseConnectionClosed)
			<-ctx.Done()
			return
		}
		wait := bo.Next()
		c.log.Info("reconnecting to the hub", "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (c *Connector) hubTLS(s *Settings) (*tls.Config, *x509.Certificate, error) {
	if !mqtt.IsSecure(s.Address) {
		return nil, nil, nil
	}
	return uplink.HubTLS(s.CACert, s.Cert, s.Key, c.tpm, s.ALPN)
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
