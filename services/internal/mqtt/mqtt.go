// Package mqtt wraps the Eclipse Paho client with what every service needs:
// a subscription table that is re-sent on every (re)connect, in-order
// delivery per subscription on a goroutine of its own (a slow handler never
// stalls the network loop or other subscriptions), acknowledgement of a QoS 1
// message only after every matching handler returned (at-least-once end to
// end), a last will, and connect errors sorted into sentinel categories.
package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Connect error categories. Callers decide retry policy with errors.Is.
var (
	ErrNotAuthenticated = errors.New("bad user name or password")
	ErrNotAuthorized    = errors.New("not authorised")
	ErrIDRejected       = errors.New("client identifier rejected")
	ErrBadProtocol      = errors.New("unacceptable protocol version")
	ErrConnection       = errors.New("connection failed")
	ErrNotConnected     = errors.New("not connected")
	ErrTimeout          = errors.New("timed out")
)

// Message is one MQTT message.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
}

// Handler processes a message. It runs on the subscription's own goroutine;
// the message is acknowledged to the broker after it returns.
type Handler func(ctx context.Context, m Message)

// Options configure a client.
type Options struct {
	URL          string // tcp://, ssl://, tls://, mqtts://, ws://, wss://
	ClientID     string
	Username     string
	Password     string
	TLS          *tls.Config
	CleanSession bool
	KeepAlive    time.Duration // default 20 s, as upstream
	// ConnectTimeout bounds one connect attempt; default 30 s.
	ConnectTimeout time.Duration
	Will           *Message
	// AutoReconnect makes paho reconnect by itself (local clients). Hub
	// clients leave it off and reconnect with their own backoff.
	AutoReconnect        bool
	MaxReconnectInterval time.Duration // default 5 s
	// OnConnect runs after each (re)connect once the subscription table was
	// re-sent (or 4 s passed waiting for SUBACKs, as upstream).
	OnConnect func()
	// OnConnectionLost runs when an established connection drops.
	OnConnectionLost func(error)
	// QueueDepth bounds each subscription's queue; default 1024. A full
	// queue makes paho wait, which pushes back on the broker.
	QueueDepth int
	Log        *slog.Logger
}

// Client is a connection to one broker.
type Client struct {
	o    Options
	pc   paho.Client
	log  *slog.Logger
	ctx  context.Context
	stop context.CancelFunc

	mu   sync.Mutex
	subs map[string]*subscription // by filter
	wg   sync.WaitGroup

	connected atomic.Bool
	// ready gets a token when onConnect has re-sent the subscription
	// table, so Connect returns only once subscriptions are in place.
	ready chan struct{}
}

// New creates a client; it does not connect.
func New(o Options) *Client {
	if o.KeepAlive == 0 {
		o.KeepAlive = 20 * time.Second
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 30 * time.Second
	}
	if o.MaxReconnectInterval == 0 {
		o.MaxReconnectInterval = 5 * time.Second
	}
	if o.QueueDepth <= 0 {
		o.QueueDepth = 1024
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{o: o, log: o.Log.With("mqtt", o.ClientID), ctx: ctx, stop: cancel, subs: map[string]*subscription{}, ready: make(chan struct{}, 1)}
	po := paho.NewClientOptions().
		AddBroker(normalizeURL(o.URL)).
		SetClientID(o.ClientID).
		SetCleanSession(o.CleanSession).
		SetKeepAlive(o.KeepAlive).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(o.ConnectTimeout).
		SetProtocolVersion(4).
		SetAutoReconnect(o.AutoReconnect).
		SetConnectRetry(false).
		SetMaxReconnectInterval(o.MaxReconnectInterval).
		SetOrderMatters(true).
		SetAutoAckDisabled(true).
		SetResumeSubs(false).
		SetWriteTimeout(30 * time.Second).
		SetDefaultPublishHandler(c.dispatch).
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(c.onLost)
	if o.Username != "" {
		po.SetUsername(o.Username)
		po.SetPassword(o.Password)
	}
	if o.TLS != nil {
		po.SetTLSConfig(o.TLS)
	}
	if w := o.Will; w != nil {
		po.SetBinaryWill(w.Topic, w.Payload, w.QoS, w.Retained)
	}
	c.pc = paho.NewClient(po)
	return c
}

// normalizeURL maps the scheme spellings Kanto accepts onto paho's.
func normalizeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	switch strings.ToLower(u.Scheme) {
	case "mqtts", "mqtt+ssl", "tcps", "tls":
		u.Scheme = "ssl"
	case "mqtt":
		u.Scheme = "tcp"
	}
	return u.String()
}

// IsSecure reports whether a broker URL uses TLS.
func IsSecure(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "wss", "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
		return true
	}
	return false
}

// Connect makes one connection attempt (paho then keeps it up if
// AutoReconnect is set). The error wraps a sentinel category.
func (c *Client) Connect(ctx context.Context) error {
	select {
	case <-c.ready: // stale token of an earlier automatic reconnect
	default:
	}
	tok := c.pc.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return classify(err)
	}
	// paho runs the connect handler on its own goroutine after the
	// CONNACK; without this wait a caller could publish a request before
	// its reply subscription reached the broker and miss the reply.
	select {
	case <-c.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func classify(err error) error {
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword):
		return fmt.Errorf("%w: %w", ErrNotAuthenticated, err)
	case errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return fmt.Errorf("%w: %w", ErrNotAuthorized, err)
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return fmt.Errorf("%w: %w", ErrIDRejected, err)
	case errors.Is(err, packets.ErrorRefusedBadProtocolVersion):
		return fmt.Errorf("%w: %w", ErrBadProtocol, err)
	}
	// paho reports CONNACK refusals on some paths only as text.
	s := err.Error()
	switch {
	case strings.Contains(s, "bad user name or password"):
		return fmt.Errorf("%w: %w", ErrNotAuthenticated, err)
	case strings.Contains(s, "not Authorized"), strings.Contains(s, "not authorised"):
		return fmt.Errorf("%w: %w", ErrNotAuthorized, err)
	}
	return fmt.Errorf("%w: %w", ErrConnection, err)
}

// IsConnected reports whether the connection is up.
func (c *Client) IsConnected() bool { return c.connected.Load() && c.pc.IsConnectionOpen() }

// Disconnect closes the connection after up to quiesce for in-flight work.
// Subscription goroutines keep running for a later Connect; Close ends them.
func (c *Client) Disconnect(quiesce time.Duration) {
	c.connected.Store(false)
	c.pc.Disconnect(uint(quiesce / time.Millisecond))
}

// Close disconnects and stops every subscription goroutine.
func (c *Client) Close() {
	c.Disconnect(250 * time.Millisecond)
	c.stop()
	c.mu.Lock()
	for _, s := range c.subs {
		s.close()
	}
	c.subs = map[string]*subscription{}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *Client) onConnect(paho.Client) {
	// Re-send the whole table; paho does not remember subscriptions.
	c.mu.Lock()
	filters := map[string]byte{}
	for f, s := range c.subs {
		filters[f] = s.qos
	}
	c.mu.Unlock()
	if len(filters) > 0 {
		tok := c.pc.SubscribeMultiple(filters, nil)
		if !tok.WaitTimeout(4 * time.Second) {
			c.log.Warn("subscriptions not acknowledged within 4s", "count", len(filters))
		} else if err := tok.Error(); err != nil {
			c.log.Warn("re-subscribe failed", "err", err)
		}
	}
	c.connected.Store(true)
	select {
	case c.ready <- struct{}{}:
	default:
	}
	c.log.Debug("connected", "url", c.o.URL, "subscriptions", len(filters))
	if c.o.OnConnect != nil {
		c.o.OnConnect()
	}
}

func (c *Client) onLost(_ paho.Client, err error) {
	c.connected.Store(false)
	c.log.Debug("connection lost", "err", err)
	if c.o.OnConnectionLost != nil {
		c.o.OnConnectionLost(classify(err))
	}
}

// Publish sends m. For QoS 1 and 2 it waits for the acknowledgement or ctx.
func (c *Client) Publish(ctx context.Context, m Message) error {
	tok := c.pc.Publish(m.Topic, m.QoS, m.Retained, m.Payload)
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := tok.Error(); err != nil {
		if !c.pc.IsConnectionOpen() {
			return fmt.Errorf("publish %s: %w: %w", m.Topic, ErrNotConnected, err)
		}
		return fmt.Errorf("publish %s: %w", m.Topic, err)
	}
	return nil
}

// PublishAsync sends m and returns a channel that yields the result once
// the broker acknowledged it (QoS > 0) or the packet was written (QoS 0).
func (c *Client) PublishAsync(m Message) <-chan error {
	tok := c.pc.Publish(m.Topic, m.QoS, m.Retained, m.Payload)
	ch := make(chan error, 1)
	go func() {
		<-tok.Done()
		ch <- tok.Error()
	}()
	return ch
}

// ConnectRetry connects, retrying every 5 s (upstream's local connect loop)
// until it works or ctx ends; it returns ctx's error then.
func (c *Client) ConnectRetry(ctx context.Context) error {
	for {
		err := c.Connect(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.Warn("broker not reachable, retrying in 5s", "url", c.o.URL, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
	}
}
