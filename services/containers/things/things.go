// Package things serves the container-management Ditto features over the
// local MQTT broker (Hono-style topics, Ditto protocol envelopes):
// ContainerFactory (create, createWithConfig), one Container:<id> feature
// per container with its status and operations, SoftwareUpdatable (install
// container descriptors from URLs, remove) and Metrics.
//
// Flow: after connecting it asks edge/thing/request for the device identity
// and, on edge/thing/response, takes <deviceId>:edge:containers as its thing,
// subscribes to command//<thing>/req/# and publishes the features as twin
// commands on e/<tenant>/<thing>.
package things

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kantofw/kanto/services/containers/ctrd"
	"github.com/kantofw/kanto/services/containers/mgr"
	"github.com/kantofw/kanto/services/containers/model"
	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// Broker is what the features need from the MQTT client.
type Broker interface {
	Publish(ctx context.Context, m mqtt.Message) error
	Subscribe(ctx context.Context, filter string, qos byte, h mqtt.Handler) error
}

var (
	_ Broker  = (*mqtt.Client)(nil)
	_ Manager = (*mgr.Manager)(nil)
)

// Manager is the container manager as the features use it.
type Manager interface {
	Create(ctx context.Context, c *model.Container, progress ctrd.Progress) (*model.Container, error)
	Get(id string) (*model.Container, error)
	List() []*model.Container
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string, o *model.StopOptions) error
	Pause(ctx context.Context, id string) error
	Unpause(ctx context.Context, id string) error
	Rename(ctx context.Context, id, name string) error
	Update(ctx context.Context, id string, o *model.UpdateOptions) error
	Remove(ctx context.Context, id string, force bool, o *model.StopOptions) error
	Subscribe(fn func(mgr.Event))
}

// Options configure the features.
type Options struct {
	Features []string // ContainerFactory, SoftwareUpdatable, Metrics
	Sampler  Sampler
	// StateFile records the Container:<id> features published, so that
	// features of containers removed while offline are deleted at the next
	// registration (upstream's sup_back_<thing>.json). Empty: not kept.
	StateFile string
	Log       *slog.Logger
}

// Things is the running feature set. Safe for concurrent use.
type Things struct {
	b   Broker
	m   Manager
	o   Options
	log *slog.Logger

	mu       sync.Mutex
	thingID  string
	tenantID string
	ns, name string
	metrics  *metricsLoop
	events   chan mgr.Event
}

// New returns the features; call Run.
func New(b Broker, m Manager, o Options) *Things {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	t := &Things{b: b, m: m, o: o, log: o.Log, events: make(chan mgr.Event, 256)}
	m.Subscribe(func(ev mgr.Event) {
		select {
		case t.events <- ev:
		default:
			t.log.Warn("event queue full, dropping", "action", ev.Action, "id", ev.Container.ID)
		}
	})
	return t
}

func (t *Things) enabled(f string) bool {
	for _, x := range t.o.Features {
		if x == f {
			return true
		}
	}
	return false
}

// OnConnect subscribes to the thing response and asks for the identity.
// Call it after every (re)connect.
func (t *Things) OnConnect(ctx context.Context) error {
	if err := t.b.Subscribe(ctx, "edge/thing/response", 1, t.onThingResponse); err != nil {
		return err
	}
	return t.b.Publish(ctx, mqtt.Message{Topic: "edge/thing/request", QoS: 1})
}

// Run forwards container events to the twin until ctx ends.
func (t *Things) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			t.mu.Lock()
			if t.metrics != nil {
				t.metrics.stop()
			}
			t.mu.Unlock()
			return
		case ev := <-t.events:
			if err := t.onEvent(ctx, ev); err != nil {
				t.log.Warn("twin update", "action", ev.Action, "id", ev.Container.ID, "err", err)
			}
		}
	}
}

type thingInfo struct {
	DeviceID string `json:"deviceId"`
	TenantID string `json:"tenantId"`
	PolicyID string `json:"policyId"`
}

func (t *Things) onThingResponse(ctx context.Context, m mqtt.Message) {
	var info thingInfo
	if err := json.Unmarshal(m.Payload, &info); err != nil || info.DeviceID == "" {
		t.log.Warn("edge/thing/response without a device id", "payload", string(m.Payload))
		return
	}
	thing := info.DeviceID + ":edge:containers"
	ns, name, _ := strings.Cut(thing, ":")
	t.mu.Lock()
	same := t.thingID == thing
	t.thingID, t.tenantID, t.ns, t.name = thing, info.TenantID, ns, name
	t.mu.Unlock()
	if !same {
		if err := t.b.Subscribe(ctx, "command//"+thing+"/req/#", 1, t.onCommand); err != nil {
			t.log.Error("subscribe to commands", "thing", thing, "err", err)
			return
		}
	}
	t.log.Info("thing", "id", thing, "tenant", info.TenantID)
	if err := t.register(ctx); err != nil {
		t.log.Error("register features", "err", err)
	}
}

// register publishes the factory, metrics and one feature per container.
func (t *Things) register(ctx context.Context) error {
	if t.enabled("ContainerFactory") {
		if err := t.modify(ctx, "/features/ContainerFactory", feature{Definition: []string{FactoryDefinition}}); err != nil {
			return err
		}
	}
	if t.enabled("Metrics") {
		if err := t.modify(ctx, "/features/Metrics", feature{Definition: []string{MetricsDefinition}}); err != nil {
			return err
		}
	}
	if t.enabled("SoftwareUpdatable") {
		if err := t.modify(ctx, "/features/SoftwareUpdatable", t.softwareFeature()); err != nil {
			return err
		}
	}
	current := map[string]bool{}
	for _, c := range t.m.List() {
		current[c.ID] = true
		if err := t.modify(ctx, "/features/Container:"+c.ID, containerFeature(c)); err != nil {
			return err
		}
	}
	t.mu.Lock()
	known := t.loadKnown()
	t.saveKnown(current)
	t.mu.Unlock()
	for id := range known {
		if !current[id] {
			if err := t.twin(ctx, "delete", "/features/Container:"+id, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadKnown and saveKnown are called with t.mu held.
func (t *Things) loadKnown() map[string]bool {
	known := map[string]bool{}
	if t.o.StateFile == "" {
		return known
	}
	b, err := os.ReadFile(t.o.StateFile)
	if err != nil {
		return known
	}
	var ids []string
	if err := json.Unmarshal(b, &ids); err != nil {
		t.log.Warn("features record", "file", t.o.StateFile, "err", err)
		return known
	}
	for _, id := range ids {
		known[id] = true
	}
	return known
}

// saveKnown writes the record atomically (temp file and rename).
func (t *Things) saveKnown(ids map[string]bool) {
	if t.o.StateFile == "" {
		return
	}
	list := make([]string, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	sort.Strings(list)
	b, _ := json.Marshal(list)
	tmp := t.o.StateFile + ".tmp"
	if err := os.MkdirAll(filepath.Dir(t.o.StateFile), 0o755); err == nil {
		if err := os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, t.o.StateFile)
			if err != nil {
				t.log.Warn("features record", "err", err)
			}
		}
	}
}

// track adds or removes id in the record of published features.
func (t *Things) track(id string, present bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	known := t.loadKnown()
	if present {
		known[id] = true
	} else {
		delete(known, id)
	}
	t.saveKnown(known)
}

func containerFeature(c *model.Container) feature {
	return feature{Definition: []string{ContainerDefinition}, Properties: map[string]any{"status": statusOf(c)}}
}

func (t *Things) identity() (thing, tenant, ns, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.thingID, t.tenantID, t.ns, t.name
}

// twin publishes a twin command (modify or delete) as a Hono event.
func (t *Things) twin(ctx context.Context, action, path string, value any) error {
	thing, tenant, ns, name := t.identity()
	if thing == "" {
		return nil // not registered yet; register sends everything
	}
	env := ditto.Envelope{
		Topic:   ns + "/" + name + "/things/twin/commands/" + action,
		Headers: ditto.Headers{"response-required": false},
		Path:    path,
	}
	if value != nil {
		env.Value = mustJSON(value)
	}
	b, err := env.Marshal()
	if err != nil {
		return err
	}
	return t.b.Publish(ctx, mqtt.Message{Topic: "e/" + tenant + "/" + thing, Payload: b, QoS: 1})
}

func (t *Things) modify(ctx context.Context, path string, value any) error {
	return t.twin(ctx, "modify", path, value)
}

// live publishes a live message from a feature's outbox.
func (t *Things) live(ctx context.Context, featureID, subject string, value any) error {
	thing, tenant, ns, name := t.identity()
	if thing == "" {
		return nil
	}
	env := ditto.Envelope{
		Topic:   ns + "/" + name + "/things/live/messages/" + subject,
		Headers: ditto.Headers{"response-required": false, "content-type": "application/json"},
		Path:    "/features/" + featureID + "/outbox/messages/" + subject,
		Value:   mustJSON(value),
	}
	b, err := env.Marshal()
	if err != nil {
		return err
	}
	return t.b.Publish(ctx, mqtt.Message{Topic: "e/" + tenant + "/" + thing, Payload: b, QoS: 0})
}

func (t *Things) onEvent(ctx context.Context, ev mgr.Event) error {
	c := ev.Container
	path := "/features/Container:" + c.ID
	switch ev.Action {
	case "created":
		if t.enabled("SoftwareUpdatable") {
			k, d := dependencyOf(c)
			if err := t.modify(ctx, "/features/SoftwareUpdatable/properties/status/installedDependencies/"+k, d); err != nil {
				return err
			}
		}
		t.track(c.ID, true)
		return t.modify(ctx, path, containerFeature(c))
	case "removed":
		t.track(c.ID, false)
		if t.enabled("SoftwareUpdatable") {
			k, _ := dependencyOf(c)
			if err := t.twin(ctx, "delete", "/features/SoftwareUpdatable/properties/status/installedDependencies/"+k, nil); err != nil {
				return err
			}
		}
		st := stateOf(c)
		st.Status = "DEAD"
		if err := t.modify(ctx, path+"/properties/status/state", st); err != nil {
			return err
		}
		return t.twin(ctx, "delete", path, nil)
	case "renamed":
		return t.modify(ctx, path+"/properties/status/name", c.Name)
	case "updated":
		return t.modify(ctx, path+"/properties/status/config", fromModel(c))
	default:
		if ev.Action == "running" {
			t.mu.Lock()
			if t.metrics != nil {
				t.metrics.forget(c.ID)
			}
			t.mu.Unlock()
		}
		return t.modify(ctx, path+"/properties/status/state", stateOf(c))
	}
}

// thingError is Ditto's error payload.
type thingError struct {
	Status  int    `json:"status"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

var errNotFound = errors.New("not found")
var errBadParam = errors.New("bad parameter")

// onCommand handles command//<thing>/req/<reqId>/<operation>.
func (t *Things) onCommand(ctx context.Context, m mqtt.Message) {
	thing, tenant, _, _ := t.identity()
	rest := strings.TrimPrefix(m.Topic, "command//"+thing+"/req/")
	reqID, op, _ := strings.Cut(rest, "/")
	env, err := ditto.Parse(m.Payload)
	if err != nil {
		t.log.Warn("command payload", "topic", m.Topic, "err", err)
		return
	}
	featureID, subject := parsePath(env.Path)
	if subject == "" {
		subject = op
	}
	value, err := t.dispatch(ctx, featureID, subject, env.Value)
	if reqID == "" || !env.Headers.ResponseRequired() {
		if err != nil {
			t.log.Warn("operation failed", "feature", featureID, "operation", subject, "err", err)
		}
		return
	}
	resp := ditto.Envelope{
		Topic:   env.Topic,
		Headers: ditto.Headers{"correlation-id": env.Headers.CorrelationID(), "response-required": false, "content-type": "application/json"},
		Path:    strings.Replace(env.Path, "/inbox/", "/outbox/", 1),
	}
	switch {
	case err != nil:
		te := thingError{Status: 500, Error: "messages:execution.failed", Message: err.Error()}
		switch {
		case errors.Is(err, errNotFound):
			te = thingError{Status: 404, Error: "messages:subject.notfound", Message: err.Error()}
		case errors.Is(err, errBadParam):
			te = thingError{Status: 400, Error: "messages:parameter.invalid", Message: err.Error()}
		}
		resp.Status, resp.Value = te.Status, mustJSON(te)
	case value != nil:
		resp.Status, resp.Value = 200, mustJSON(value)
	default:
		resp.Status = 204
	}
	b, _ := resp.Marshal()
	_ = tenant
	topic := fmt.Sprintf("command//%s/res/%s/%d", thing, reqID, resp.Status)
	if err := t.b.Publish(ctx, mqtt.Message{Topic: topic, Payload: b, QoS: 1}); err != nil {
		t.log.Warn("publish response", "err", err)
	}
}

// parsePath splits /features/<id>/inbox/messages/<subject>.
func parsePath(p string) (featureID, subject string) {
	rest, ok := strings.CutPrefix(p, "/features/")
	if !ok {
		return "", ""
	}
	featureID, rest, _ = strings.Cut(rest, "/")
	_, subject, _ = strings.Cut(rest, "messages/")
	return featureID, subject
}

func (t *Things) dispatch(ctx context.Context, featureID, op string, raw json.RawMessage) (any, error) {
	switch {
	case featureID == "ContainerFactory" && t.enabled("ContainerFactory"):
		return t.factory(ctx, op, raw)
	case featureID == "SoftwareUpdatable" && t.enabled("SoftwareUpdatable"):
		return nil, t.softwareUpdatable(ctx, op, raw)
	case featureID == "Metrics" && t.enabled("Metrics"):
		return nil, t.metricsRequest(ctx, op, raw)
	case strings.HasPrefix(featureID, "Container:"):
		return nil, t.container(ctx, strings.TrimPrefix(featureID, "Container:"), op, raw)
	}
	return nil, fmt.Errorf("unknown feature %s: %w", featureID, errNotFound)
}

type createRequest struct {
	ImageRef string  `json:"imageRef"`
	Name     string  `json:"name"`
	Start    bool    `json:"start"`
	Config   *config `json:"config"`
}

func (t *Things) factory(ctx context.Context, op string, raw json.RawMessage) (any, error) {
	if op != "create" && op != "createWithConfig" {
		return nil, fmt.Errorf("unknown operation %s: %w", op, errNotFound)
	}
	var req createRequest
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &req); err != nil {
			return nil, fmt.Errorf("%v: %w", err, errBadParam)
		}
	}
	if req.ImageRef == "" {
		return nil, errors.New("imageRef must be set")
	}
	c := &model.Container{Image: model.Image{Name: req.ImageRef}}
	if op == "createWithConfig" {
		c.Name = req.Name
		if req.Config != nil {
			req.Config.toModel(c)
		}
	}
	created, err := t.m.Create(ctx, c, nil)
	if err != nil {
		return nil, err
	}
	if req.Start {
		if err := t.m.Start(ctx, created.ID); err != nil {
			t.log.Warn("start after create", "id", created.ID, "err", err)
		}
	}
	return created.ID, nil
}

type stopOptions struct {
	Force   bool   `json:"force"`
	Timeout int64  `json:"timeout"`
	Signal  string `json:"signal"`
}

type updateRequest struct {
	RestartPolicy *restartPolicy `json:"restartPolicy"`
	Resources     *resources     `json:"resources"`
}

func (t *Things) container(ctx context.Context, id, op string, raw json.RawMessage) error {
	if _, err := t.m.Get(id); err != nil {
		return fmt.Errorf("%v: %w", err, errNotFound)
	}
	decode := func(v any) error {
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("%v: %w", err, errBadParam)
		}
		return nil
	}
	switch op {
	case "start":
		return t.m.Start(ctx, id)
	case "stop":
		return t.m.Stop(ctx, id, nil)
	case "stopWithOptions":
		var o stopOptions
		if err := decode(&o); err != nil {
			return err
		}
		return t.m.Stop(ctx, id, &model.StopOptions{Force: o.Force, Timeout: o.Timeout, Signal: o.Signal})
	case "pause":
		return t.m.Pause(ctx, id)
	case "resume":
		return t.m.Unpause(ctx, id)
	case "rename":
		var name string
		if err := decode(&name); err != nil {
			return err
		}
		return t.m.Rename(ctx, id, name)
	case "update":
		var u updateRequest
		if err := decode(&u); err != nil {
			return err
		}
		o := &model.UpdateOptions{}
		if rp := u.RestartPolicy; rp != nil {
			o.RestartPolicy = &model.RestartPolicy{Type: enum(rp.Type), MaximumRetryCount: rp.MaxRetryCount, RetryTimeout: time.Duration(rp.RetryTimeout) * time.Second}
		}
		if r := u.Resources; r != nil {
			o.Resources = &model.Resources{Memory: r.Memory, MemoryReservation: r.MemoryReservation, MemorySwap: r.MemorySwap}
		}
		return t.m.Update(ctx, id, o)
	case "remove":
		force := false
		if len(raw) > 0 {
			if err := decode(&force); err != nil {
				return err
			}
		}
		return t.m.Remove(ctx, id, force, nil)
	}
	return fmt.Errorf("unknown operation %s: %w", op, errNotFound)
}
