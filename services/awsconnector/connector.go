// Package awsconnector is aws-connector: it links the device's local
// Mosquitto to AWS IoT Core over mutual TLS, wire-compatible with Eclipse
// Kanto's aws-connector. Twin commands of local apps on the device's things
// become Device Shadow updates (root attributes: the classic shadow; every
// feature: a named shadow), other events and telemetry go to AWS on Hono's
// topic shapes with an x-timestamp header, and commands from AWS reach
// local apps like the suite connector's.
//
// Beyond upstream: everything towards AWS goes through the disk-persisted
// bounded buffer of the suite connector (nothing is lost while offline or
// on a kill -9); a device with a claim certificate provisions itself by
// AWS IoT fleet provisioning; thing info is answered while offline too.
// Upstream quirks not kept: arrays are values in modify (AWS replaces them
// whole; upstream merged them by index, leaving nulls inside); the shadow
// cache is fetched from AWS when unknown (upstream's was lost on restart)
// and follows accepted updates by merging (upstream kept only the last
// one); cmd//<dev>/q/… commands are duplicated to c//<dev>/q/… (upstream
// computed c///q/); a merge patch nulling a feature deletes its shadow;
// refused credentials are retried with the backoff, never given up.
//
// Goroutines: Run owns the local clients' subscription goroutines (package
// mqtt), the intake and one AWS session at a time, which owns its sender.
package awsconnector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kantofw/kanto/services/internal/buffer"
	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/hono"
	"github.com/kantofw/kanto/services/internal/lifecycle"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/tpmkey"
	"github.com/kantofw/kanto/services/internal/uplink"
)

var errMapping = errors.New("cannot map to a shadow")

// Options are what Run needs besides the context.
type Options struct {
	Settings Settings
	Env      uplink.Env
	Log      *slog.Logger
	Notifier *lifecycle.Notifier
	Now      func() time.Time
}

// Connector is one aws-connector.
type Connector struct {
	o      Options
	s      Settings
	log    *slog.Logger
	buf    *buffer.Buffer
	intake *uplink.Intake
	local  *mqtt.Client
	cloud  *mqtt.Client
	status *uplink.StatusPublisher
	corr   uplink.Correlations
	cache  *shadowCache
	online atomic.Bool
	tpm    *tpmkey.Key // the device key when tpmDevice is set, else nil

	mu       sync.Mutex
	deviceID string // known once the identity is (possibly after provisioning)
	mapper   *mapper
	gets     map[string]chan getAnswer // pending shadow gets by clientToken
}

// getAnswer is AWS's answer to a shadow get.
type getAnswer struct {
	reported map[string]any
	missing  bool // 404: no such shadow
	err      error
}

// New prepares a connector; Run starts it.
func New(o Options) *Connector {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Notifier == nil {
		o.Notifier = lifecycle.NewNotifier(o.Log)
	}
	return &Connector{o: o, s: o.Settings, log: o.Log, cache: newShadowCache(), gets: map[string]chan getAnswer{}}
}

// identity returns the device id: the CN of the device certificate, or the
// thing name fleet provisioning stored (AWS's certificates carry no device
// id in their CN). ok is false when the device still has to provision.
func (c *Connector) identity() (id string, ok bool, err error) {
	if _, err := os.Stat(c.s.Cert); err != nil {
		if c.s.ClaimCert != "" {
			return "", false, nil
		}
		return "", false, fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	if c.s.ClaimCert != "" {
		if name, err := os.ReadFile(c.s.ThingNameFile); err == nil {
			id := strings.TrimSpace(string(name))
			if _, _, err := ditto.SplitID(id); err != nil {
				return "", false, fmt.Errorf("%w: provisioned thing name %q: %v", ErrIdentity, id, err)
			}
			return id, true, nil
		}
	}
	id, err = deviceID(c.s.Cert)
	return id, err == nil, err
}

func (c *Connector) setIdentity(id string) {
	f, _ := c.s.filters()
	c.mu.Lock()
	c.deviceID = id
	c.mapper = &mapper{deviceID: id, topicFilter: f.topic, payloadFilters: f.payload, cache: c.cache}
	c.mu.Unlock()
}

func (c *Connector) device() (string, *mapper) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deviceID, c.mapper
}

// Run runs until ctx ends; it returns nil on cancellation.
func (c *Connector) Run(ctx context.Context) error {
	id, provisioned, err := c.identity()
	if err != nil {
		return err
	}
	if provisioned {
		c.setIdentity(id)
	}
	st := c.s
	// The TPM key is checked against cert now, not at the first handshake.
	if c.tpm, err = st.TPMSettings.Open(st.Cert, c.log); err != nil {
		return err
	}
	if c.tpm != nil {
		defer c.tpm.Close()
	}
	buf, err := st.BufferSettings.Open()
	if err != nil {
		return fmt.Errorf("offline buffer: %w", err)
	}
	c.buf = buf
	defer buf.Close()
	c.intake = uplink.NewIntake(buf, c.log)
	c.local, c.cloud, err = st.LocalSettings.Clients(c.o.Env, func() { go c.status.Republish(ctx) }, c.log)
	if err != nil {
		return err
	}
	c.status = &uplink.StatusPublisher{Client: c.local, Now: c.o.Now}
	defer c.cloud.Close()
	defer c.local.Close()
	data := slices.Concat(hono.EventFilters, hono.TelemetryFilters, hono.ResponseFilters)
	if err := c.cloud.SubscribeDeferred(ctx, data, 1, c.onLocal); err != nil {
		return err
	}
	if err := c.cloud.Subscribe(ctx, uplink.TopicThingRequest, 0, func(ctx context.Context, _ mqtt.Message) { c.announce(ctx) }); err != nil {
		return err
	}
	c.log.Info("connecting to the local broker", "localAddress", st.LocalAddress)
	for _, cl := range []*mqtt.Client{c.local, c.cloud} {
		if err := cl.ConnectRetry(ctx); err != nil {
			return nil
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() { defer wg.Done(); c.intake.Run(ctx) }()
	c.announce(ctx)
	c.o.Notifier.Ready("local broker connected")
	go c.o.Notifier.Watchdog(ctx, c.local.IsConnected)
	defer c.o.Notifier.Stopping()
	defer c.status.Send(context.WithoutCancel(ctx), uplink.CauseConnectionClosed)
	c.awsLoop(ctx)
	return nil
}

// announce publishes the thing info (once the device id is known).
func (c *Connector) announce(ctx context.Context) {
	id, _ := c.device()
	if id == "" {
		return
	}
	info, _ := json.Marshal(map[string]string{"deviceId": id, "tenantId": c.s.TenantID})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.local.Publish(pctx, mqtt.Message{Topic: uplink.TopicThingReply, Payload: info}); err != nil {
		c.log.Warn("thing info not published", "err", err)
	}
}

// awsLoop keeps an AWS session up with upstream's backoff; it provisions
// the device first when it has no certificate of its own yet.
func (c *Connector) awsLoop(ctx context.Context) {
	bo := &uplink.Backoff{Env: c.o.Env}
	sender := &uplink.Sender{Buf: c.buf, Route: c.route, Log: c.log}
	for {
		err := c.attempt(ctx, bo, sender)
		if ctx.Err() != nil {
			return
		}
		wait := bo.Next()
		c.log.Info("reconnecting to AWS IoT Core", "in", wait.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (c *Connector) attempt(ctx context.Context, bo *uplink.Backoff, sender *uplink.Sender) error {
	id, _ := c.device()
	if id == "" {
		if err := c.provision(ctx); err != nil {
			if ctx.Err() == nil {
				c.log.Error("fleet provisioning failed", "template", c.s.ProvisioningTemplate, "err", err)
				c.status.Send(ctx, uplink.CauseProvisioningError)
			}
			return err
		}
		id, _ = c.device()
		c.announce(ctx)
	}
	tlsCfg, _, err := uplink.HubTLS(c.s.CACert, c.s.Cert, c.s.Key, c.tpm, c.s.ALPN)
	if err != nil {
		c.status.Send(ctx, uplink.CauseConnectionError)
		return err
	}
	clientID := c.s.ClientID
	if clientID == "" {
		clientID = id
	}
	lost := make(chan error, 1)
	aws := mqtt.New(mqtt.Options{URL: c.s.Address, ClientID: clientID, CleanSession: false, TLS: tlsCfg, Log: c.log,
		OnConnectionLost: func(err error) {
			select {
			case lost <- err:
			default:
			}
		}})
	defer aws.Close()
	for _, f := range []string{
		shadowTopic(id, "", "update/accepted"), shadowTopic(id, "", "delete/accepted"),
		shadowTopic(id, "+", "update/accepted"), shadowTopic(id, "+", "delete/accepted"),
		shadowTopic(id, "", "update/rejected"), shadowTopic(id, "+", "update/rejected"),
		shadowTopic(id, "", "get/accepted"), shadowTopic(id, "", "get/rejected"),
		shadowTopic(id, "+", "get/accepted"), shadowTopic(id, "+", "get/rejected"),
	} {
		_ = aws.Subscribe(ctx, f, 0, c.onShadow)
	}
	_ = aws.Subscribe(ctx, hono.RequestFilter, 0, c.onCommand)
	_ = aws.Subscribe(ctx, "cmd//+/q/#", 0, c.onCommand)
	c.log.Info("connecting to AWS IoT Core", "address", c.s.Address, "deviceId", id, "clientId", clientID)
	if err := aws.Connect(ctx); err != nil {
		if ctx.Err() == nil {
			c.log.Warn("AWS IoT Core connect failed", "err", err)
			c.status.Send(ctx, uplink.CauseOf(err))
		}
		return err
	}
	bo.Reset()
	c.online.Store(true)
	defer c.online.Store(false)
	c.cache.setFetch(func(name string) (map[string]any, error) { return c.getShadow(ctx, aws, id, name) })
	defer c.cache.setFetch(nil)
	defer c.corr.Clear()
	c.status.Send(ctx, "")
	c.announce(ctx)
	c.log.Info("AWS IoT Core connected", "address", c.s.Address)
	c.o.Notifier.Status("cloud connected")
	err = sender.Send(ctx, aws, lost)
	if ctx.Err() == nil {
		c.log.Warn("AWS IoT Core connection lost", "err", err)
		c.status.Send(ctx, uplink.CauseOf(err))
	}
	return err
}
