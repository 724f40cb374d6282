package mqtt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/internal/netproxy"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type collector struct {
	mu   sync.Mutex
	msgs []Message
	ch   chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 100000)} }

func (c *collector) handle(_ context.Context, m Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	c.ch <- struct{}{}
}

func (c *collector) wait(t *testing.T, n int) []Message {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.msgs)
		c.mu.Unlock()
		if got >= n {
			c.mu.Lock()
			defer c.mu.Unlock()
			return append([]Message(nil), c.msgs...)
		}
		select {
		case <-c.ch:
		case <-timeout:
			t.Fatalf("got %d messages, want %d", got, n)
		}
	}
}

func connect(t *testing.T, o Options) *Client {
	t.Helper()
	c := New(o)
	if err := c.Connect(ctxT(t)); err != nil {
		t.Fatalf("connect %s: %v", o.ClientID, err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestOrderedDeliveryAndResubscribeAfterBrokerRestart(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Options{Persistence: true})
	ctx := ctxT(t)
	sub := connect(t, Options{URL: b.URL(), ClientID: "sub", AutoReconnect: true, MaxReconnectInterval: 200 * time.Millisecond})
	col := newCollector()
	if err := sub.Subscribe(ctx, "data/#", 1, col.handle); err != nil {
		t.Fatal(err)
	}
	pub := connect(t, Options{URL: b.URL(), ClientID: "pub", AutoReconnect: true, MaxReconnectInterval: 200 * time.Millisecond})
	const n = 500
	for i := range n {
		if err := pub.Publish(ctx, Message{Topic: "data/x", QoS: 1, Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	got := col.wait(t, n)
	for i, m := range got[:n] {
		if string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d = %q, out of order", i, m.Payload)
		}
	}

	// A broker restart with clean sessions loses subscriptions on the broker
	// side; the client must re-send its table on reconnect.
	b.Restart()
	if err := sub.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pub.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, Message{Topic: "data/after", QoS: 1, Payload: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	// QoS 1 is at least once: a data/x whose PUBACK the broker had not
	// persisted before the restart may come again first.
	deadline := time.After(20 * time.Second)
	for seen := n; ; {
		got = col.wait(t, seen+1)
		if got[seen].Topic == "data/after" {
			break
		}
		if got[seen].Topic != "data/x" {
			t.Fatalf("after restart got %q", got[seen].Topic)
		}
		seen++
		select {
		case <-deadline:
			t.Fatal("data/after never arrived")
		default:
		}
	}
}

func TestSlowHandlerDoesNotBlockOtherSubscriptions(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Options{})
	ctx := ctxT(t)
	c := connect(t, Options{URL: b.URL(), ClientID: "c"})
	release := make(chan struct{})
	if err := c.Subscribe(ctx, "slow", 1, func(context.Context, Message) { <-release }); err != nil {
		t.Fatal(err)
	}
	defer close(release)
	fast := newCollector()
	if err := c.Subscribe(ctx, "fast", 1, fast.handle); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"slow", "slow", "fast"} {
		if err := c.Publish(ctx, Message{Topic: topic, QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	fast.wait(t, 1)
}

func TestLastWillOnAbruptDisconnect(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Options{})
	ctx := ctxT(t)
	w := connect(t, Options{URL: b.URL(), ClientID: "w"})
	col := newCollector()
	if err := w.Subscribe(ctx, "will/#", 1, col.handle); err != nil {
		t.Fatal(err)
	}
	p, err := netproxy.New(b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	d := New(Options{URL: "tcp://" + p.Addr(), ClientID: "d", Will: &Message{Topic: "will/d", Payload: []byte("gone"), QoS: 1}})
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p.Cut() // the socket dies without DISCONNECT: the broker publishes the will
	got := col.wait(t, 1)
	if string(got[0].Payload) != "gone" {
		t.Errorf("will payload = %q, want gone", got[0].Payload)
	}
}

func TestConnectErrorsAreClassified(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Options{Users: map[string]string{"u": "right"}})
	ctx := ctxT(t)
	err := New(Options{URL: b.URL(), ClientID: "x", Username: "u", Password: "wrong"}).Connect(ctx)
	if !errors.Is(err, ErrNotAuthenticated) && !errors.Is(err, ErrNotAuthorized) {
		t.Errorf("wrong password: err = %v, want an auth category", err)
	}
	err = New(Options{URL: "tcp://127.0.0.1:1", ClientID: "x", ConnectTimeout: 2 * time.Second}).Connect(ctx)
	if !errors.Is(err, ErrConnection) {
		t.Errorf("closed port: err = %v, want ErrConnection", err)
	}
	if err := New(Options{URL: b.URL(), ClientID: "x", Username: "u", Password: "right"}).Connect(ctx); err != nil {
		t.Errorf("right password: %v", err)
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"command//+/req/#", "command//ns:gw/req/1/x", true},
		{"command//+/req/#", "command///req/1/x", true},
		{"#", "$SYS/x", false},
		{"$SYS/broker/log/#", "$SYS/broker/log/N", true},
		{"e", "e/", false},
	}
	for _, tt := range tests {
		if got := Match(tt.filter, tt.topic); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

// TestConnectReturnsWithSubscriptionsInPlace subscribes before connecting
// and has the broker echo a message right after Connect: a client that
// returned from Connect before its SUBACK would miss it. A large table makes
// the window wide enough to show.
func TestConnectReturnsWithSubscriptionsInPlace(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Options{})
	ctx := ctxT(t)
	pub := connect(t, Options{URL: b.URL(), ClientID: "pub"})
	for round := range 20 {
		c := New(Options{URL: b.URL(), ClientID: fmt.Sprint("sub", round), CleanSession: true})
		col := newCollector()
		for i := range 300 {
			if err := c.Subscribe(ctx, fmt.Sprintf("t/%d/%d", round, i), 1, col.handle); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, Message{Topic: fmt.Sprintf("t/%d/299", round), QoS: 1, Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		col.wait(t, 1)
		c.Close()
	}
}
