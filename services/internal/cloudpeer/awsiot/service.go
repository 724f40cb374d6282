// Package awsiot plays AWS IoT Core for tests: the Device Shadow service
// (classic and named shadows: update, get and delete with accepted and
// rejected answers, update/delta and update/documents, versions) and fleet
// provisioning by claim (CreateKeysAndCertificate and RegisterThing), over
// MQTT on a real Mosquitto. Devices reach the broker over mutual TLS with
// certificates of the CA here; the service itself talks to the broker on a
// back-end listener. Topics and payloads follow AWS's documentation.
//
// It is a test tool, not part of the device image.
package awsiot

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/kantofw/kanto/services/internal/mqtt"
)

// Template is a fleet provisioning template: ThingName turns the device's
// parameters into a thing name, or refuses them (a pre-provisioning hook).
type Template struct {
	ThingName func(params map[string]string) (string, error)
	// DeviceConfiguration is returned to the device as is.
	DeviceConfiguration map[string]string
}

// Options shape the simulator.
type Options struct {
	// CA signs the certificates CreateKeysAndCertificate hands out.
	CA        *CA
	Templates map[string]Template
	// MaxDocument bounds an update request (AWS: 8 KiB of state; default 8192).
	MaxDocument int
	Log         *slog.Logger
	Now         func() time.Time
}

// Service is the simulated AWS IoT Core back end.
type Service struct {
	o Options
	c *mqtt.Client

	mu      sync.Mutex
	shadows map[string]*Shadow // thing + "\x00" + name
	tokens  map[string]string  // ownership token -> certificate id
	certs   map[string]string  // certificate id -> PEM
	things  map[string]string  // thing name -> certificate id
	log     []Request
	changed chan struct{}
}

// Request is one request a device made, for tests.
type Request struct {
	Topic   string
	Payload []byte
}

// Start connects the simulator to the broker (its back-end listener, a
// plain URL, or TLS with tlsCfg) and serves until Close.
func Start(ctx context.Context, brokerURL string, tlsCfg *tls.Config, o Options) (*Service, error) {
	if o.MaxDocument == 0 {
		o.MaxDocument = 8192
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{o: o, shadows: map[string]*Shadow{}, tokens: map[string]string{}, certs: map[string]string{},
		things: map[string]string{}, changed: make(chan struct{})}
	s.c = mqtt.New(mqtt.Options{URL: brokerURL, ClientID: "aws-iot-core-" + rid(), CleanSession: true, TLS: tlsCfg,
		AutoReconnect: true, MaxReconnectInterval: 200 * time.Millisecond, QueueDepth: 1 << 14, Log: o.Log})
	filters := []string{
		"$aws/things/+/shadow/update", "$aws/things/+/shadow/get", "$aws/things/+/shadow/delete",
		"$aws/things/+/shadow/name/+/update", "$aws/things/+/shadow/name/+/get", "$aws/things/+/shadow/name/+/delete",
		"$aws/certificates/create/json", "$aws/provisioning-templates/+/provision/json",
	}
	for _, f := range filters {
		if err := s.c.Subscribe(ctx, f, 1, s.handle); err != nil {
			s.c.Close()
			return nil, err
		}
	}
	if err := s.c.Connect(ctx); err != nil {
		s.c.Close()
		return nil, err
	}
	return s, nil
}

// Close disconnects.
func (s *Service) Close() { s.c.Close() }

func (s *Service) handle(ctx context.Context, m mqtt.Message) {
	s.mu.Lock()
	s.log = append(s.log, Request{Topic: m.Topic, Payload: m.Payload})
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	switch {
	case m.Topic == "$aws/certificates/create/json":
		s.createKeysAndCertificate(ctx, m)
	case strings.HasPrefix(m.Topic, "$aws/provisioning-templates/"):
		s.registerThing(ctx, m)
	default:
		s.shadowRequest(ctx, m)
	}
}

func (s *Service) reply(ctx context.Context, topic string, v any) {
	data, _ := json.Marshal(v)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.c.Publish(pctx, mqtt.Message{Topic: topic, Payload: data, QoS: 1}); err != nil {
		s.o.Log.Warn("reply not published", "topic", topic, "err", err)
	}
}

func (s *Service) rejectShadow(ctx context.Context, prefix, op string, e *shadowError, token string) {
	doc := map[string]any{"code": e.Code, "message": e.Message, "timestamp": s.o.Now().Unix()}
	if token != "" {
		doc["clientToken"] = token
	}
	s.reply(ctx, prefix+"/"+op+"/rejected", doc)
}

func clientToken(payload []byte) string {
	var t struct {
		ClientToken string `json:"clientToken"`
	}
	_ = json.Unmarshal(payload, &t)
	return t.ClientToken
}

func (s *Service) shadowRequest(ctx context.Context, m mqtt.Message) {
	thing, name, op, err := shadowTopic(m.Topic)
	if err != nil {
		return
	}
	prefix := ShadowPrefix(thing, name)
	key := thing + "\x00" + name
	token := clientToken(m.Payload)
	s.mu.Lock()
	sh := s.shadows[key]
	if sh == nil {
		sh = &Shadow{}
		s.shadows[key] = sh
	}
	var out []func()
	switch op {
	case "update":
		acc, docs, delta, err := sh.update(m.Payload, s.o.MaxDocument, s.o.Now())
		var se *shadowError
		if errors.As(err, &se) {
			out = append(out, func() { s.rejectShadow(ctx, prefix, "update", se, token) })
			break
		}
		out = append(out, func() { s.reply(ctx, prefix+"/update/accepted", acc) }, func() { s.reply(ctx, prefix+"/update/documents", docs) })
		if delta != nil {
			out = append(out, func() { s.reply(ctx, prefix+"/update/delta", delta) })
		}
	case "get":
		if !sh.exists {
			out = append(out, func() { s.rejectShadow(ctx, prefix, "get", noShadow(thing, name), token) })
			break
		}
		doc := sh.document(true)
		doc["timestamp"] = s.o.Now().Unix()
		if token != "" {
			doc["clientToken"] = token
		}
		out = append(out, func() { s.reply(ctx, prefix+"/get/accepted", doc) })
	case "delete":
		if !sh.exists {
			out = append(out, func() { s.rejectShadow(ctx, prefix, "delete", noShadow(thing, name), token) })
			break
		}
		// The version is kept: AWS does not reset it on delete.
		*sh = Shadow{Version: sh.Version}
		doc := map[string]any{"version": sh.Version, "timestamp": s.o.Now().Unix()}
		if token != "" {
			doc["clientToken"] = token
		}
		out = append(out, func() { s.reply(ctx, prefix+"/delete/accepted", doc) })
	}
	s.mu.Unlock()
	for _, f := range out {
		f()
	}
}

func noShadow(thing, name string) *shadowError {
	if name == "" {
		return rejected(404, "No shadow exists with name: '"+thing+"'")
	}
	return rejected(404, "No shadow exists with name: '"+thing+"~"+name+"'")
}

// UpdateDesired changes a shadow's desired state from the cloud side (an
// application calling UpdateThingShadow) and notifies the device.
func (s *Service) UpdateDesired(ctx context.Context, thing, name string, desired map[string]any) error {
	payload, _ := json.Marshal(map[string]any{"state": map[string]any{"desired": desired}})
	prefix := ShadowPrefix(thing, name)
	s.mu.Lock()
	key := thing + "\x00" + name
	sh := s.shadows[key]
	if sh == nil {
		sh = &Shadow{}
		s.shadows[key] = sh
	}
	_, docs, delta, err := sh.update(payload, s.o.MaxDocument, s.o.Now())
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.reply(ctx, prefix+"/update/documents", docs)
	if delta != nil {
		s.reply(ctx, prefix+"/update/delta", delta)
	}
	return nil
}

// Get returns a copy of a shadow's document (nil when it does not exist).
func (s *Service) Get(thing, name string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.shadows[thing+"\x00"+name]
	if sh == nil {
		return nil
	}
	return sh.document(true)
}

// Reported returns a shadow's reported state (nil when none).
func (s *Service) Reported(thing, name string) map[string]any {
	d := s.Get(thing, name)
	if d == nil {
		return nil
	}
	r, _ := d["state"].(map[string]any)["reported"].(map[string]any)
	return r
}

// Requests returns the device requests seen on topics matching filter.
func (s *Service) Requests(filter string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.log {
		if mqtt.Match(filter, r.Topic) {
			out = append(out, r)
		}
	}
	return out
}

// Await waits until pred holds for the service (checked after every
// request), or ctx ends.
func (s *Service) Await(ctx context.Context, what string, pred func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if pred() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("awaiting %s: %w", what, ctx.Err())
		case <-ch:
		case <-time.After(50 * time.Millisecond): // replies are applied after the request is logged
		}
	}
}

// Thing reports the certificate id registered for a thing name.
func (s *Service) Thing(name string) (certID string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	certID, ok = s.things[name]
	return certID, ok
}

func rid() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
