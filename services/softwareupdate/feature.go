package softwareupdate

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/hono"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// FeatureDefinition is the hawkBit SoftwareUpdatable 2.0.0 model.
const FeatureDefinition = "org.eclipse.hawkbit.swupdatable:SoftwareUpdatable:2.0.0"

// feature is the SoftwareUpdatable feature of the edge thing.
type feature struct {
	c          *mqtt.Client
	id         string
	moduleType string
	engine     *Engine
	log        *slog.Logger
	ready      chan struct{} // closed when the thing is known
	once       sync.Once

	mu    sync.Mutex
	thing ditto.Topic
	known bool
}

func (f *feature) subscribe(ctx context.Context) error {
	if err := f.c.Subscribe(ctx, "edge/thing/response", 1, f.onEdge); err != nil {
		return err
	}
	return f.c.Subscribe(ctx, hono.RequestFilter, 1, f.onCommand)
}

func (f *feature) onConnect() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := f.c.Publish(ctx, mqtt.Message{Topic: "edge/thing/request", QoS: 1}); err != nil {
		f.log.Warn("edge thing request", "err", err)
	}
}

func (f *feature) onEdge(ctx context.Context, msg mqtt.Message) {
	var ec struct {
		DeviceID string `json:"deviceId"`
	}
	if err := json.Unmarshal(msg.Payload, &ec); err != nil {
		return
	}
	ns, name, err := ditto.SplitID(ec.DeviceID)
	if err != nil {
		f.log.Warn("edge configuration", "err", err)
		return
	}
	f.mu.Lock()
	same := f.known && f.thing.Namespace == ns && f.thing.Name == name
	f.thing, f.known = ditto.Topic{Namespace: ns, Name: name, Group: "things", Channel: "twin", Criterion: "commands", Action: "modify"}, true
	f.mu.Unlock()
	if same {
		return
	}
	f.activate(ctx)
	f.once.Do(func() { close(f.ready) })
}

func (f *feature) activate(ctx context.Context) {
	status := map[string]any{"softwareModuleType": f.moduleType, "lastOperation": nil, "lastFailedOperation": nil}
	if deps := f.depsMap(); len(deps) > 0 {
		status["installedDependencies"] = deps
	}
	v, _ := json.Marshal(map[string]any{"definition": []string{FeatureDefinition}, "properties": map[string]any{"status": status}})
	f.modify(ctx, "/features/"+f.id, v)
}

// depsMap keys installed dependencies by array index, as upstream.
func (f *feature) depsMap() map[string]DependencyDescribe {
	deps, err := loadDeps(f.engine.Storage)
	if err != nil {
		f.log.Warn("installed dependencies", "err", err)
	}
	out := map[string]DependencyDescribe{}
	for i, d := range deps {
		out[strconv.Itoa(i)] = d.Dep
	}
	return out
}

func (f *feature) modify(ctx context.Context, path string, value json.RawMessage) {
	f.mu.Lock()
	tp, known := f.thing, f.known
	f.mu.Unlock()
	if !known {
		return
	}
	env := &ditto.Envelope{Topic: tp.String(), Path: path, Value: value,
		Headers: ditto.Headers{"response-required": false, "content-type": ditto.ContentTypeJSON}}
	b, _ := env.Marshal()
	if err := f.c.Publish(ctx, mqtt.Message{Topic: "e", QoS: 1, Payload: b}); err != nil {
		f.log.Warn("publish", "path", path, "err", err)
	}
}

// report writes lastFailedOperation (for failures) and lastOperation.
func (f *feature) report(r Report) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	v, _ := json.Marshal(r)
	if r.Status.Failed() {
		f.modify(ctx, "/features/"+f.id+"/properties/status/lastFailedOperation", v)
	}
	f.modify(ctx, "/features/"+f.id+"/properties/status/lastOperation", v)
}

func (f *feature) depsChanged() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	v, _ := json.Marshal(f.depsMap())
	f.modify(ctx, "/features/"+f.id+"/properties/status/installedDependencies", v)
}

// onCommand handles install, download, remove, cancel and cancelRemove.
// Upstream's script agent ignores all but install and download; here every
// operation answers.
func (f *feature) onCommand(ctx context.Context, msg mqtt.Message) {
	cmd, err := hono.ParseCommand(msg.Topic)
	if err != nil || cmd.Response || cmd.RequestID() == "" {
		return
	}
	env, err := ditto.Parse(msg.Payload)
	if err != nil {
		return
	}
	tp, err := ditto.ParseTopic(env.Topic)
	if err != nil || tp.Channel != "live" || tp.Criterion != "messages" {
		return
	}
	f.mu.Lock()
	mine := f.known && tp.Namespace == f.thing.Namespace && tp.Name == f.thing.Name
	f.mu.Unlock()
	prefix := "/features/" + f.id + "/inbox/messages/"
	if !mine || !strings.HasPrefix(env.Path, prefix) {
		return
	}
	op := strings.TrimPrefix(env.Path, prefix)
	reply := func(status int, body any) {
		if !env.Headers.ResponseRequired() {
			return
		}
		h := ditto.Headers{"correlation-id": env.Headers.CorrelationID(), "response-required": false}
		out := &ditto.Envelope{Topic: tp.String(), Path: "/features/" + f.id + "/outbox/messages/" + op, Status: status, Headers: h}
		if body != nil {
			out.Value, _ = json.Marshal(body)
			h["content-type"] = ditto.ContentTypeJSON
		}
		b, _ := out.Marshal()
		_ = f.c.Publish(ctx, mqtt.Message{Topic: fmt.Sprintf("command///res/%s/%d", cmd.RequestID(), status), QoS: 1, Payload: b})
	}
	bad := func(err error) {
		reply(400, map[string]any{"error": "messages:parameter.invalid", "status": 400, "message": err.Error()})
	}
	switch op {
	case OpInstall, OpDownload:
		a, err := ParseUpdateAction(env.Value)
		if err != nil {
			bad(err)
			return
		}
		reply(204, nil)
		if err := f.engine.Submit(op, a); err != nil {
			f.log.Warn("operation not queued", "op", op, "err", err)
		}
	case OpRemove:
		a, err := ParseRemoveAction(env.Value)
		if err != nil {
			bad(err)
			return
		}
		reply(204, nil)
		if err := f.engine.SubmitRemove(a); err != nil {
			f.log.Warn("remove not queued", "err", err)
		}
	case "cancel", "cancelRemove":
		a, err := ParseCancelAction(env.Value)
		if err != nil {
			bad(err)
			return
		}
		reply(204, nil)
		f.engine.Cancel(a.CorrelationID)
	}
}
