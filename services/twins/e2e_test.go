package twins_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/internal/cloudpeer"
	"github.com/kantofw/kanto/services/internal/kantotest"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

const (
	tenant   = "T"
	deviceID = "ns:gw"
	authID   = "gw-auth"
	password = "s3cret"
)

// world is a device (local broker, local-digital-twins, a local app) and a
// cloud (hub broker behind the Hono adapter simulator, northbound API).
type world struct {
	t        *testing.T
	dir      string
	local    *mosquittotest.Broker
	adapter  *cloudpeer.Adapter
	nb       *cloudpeer.Northbound
	app      *mqtt.Client
	status   *kantotest.Recorder
	events   *kantotest.Recorder // command///req/# and command//+/req/# (responses, events, commands)
	settings map[string]any
	proc     *kantotest.Proc
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir()}
	w.local = mosquittotest.Start(t, mosquittotest.Options{SysLog: true, Extra: "max_queued_messages 100000\n"})
	hub := mosquittotest.Start(t, mosquittotest.Options{SysLog: true, Extra: "max_queued_messages 100000\n"})
	var err error
	w.adapter, err = cloudpeer.NewAdapter(hub.Addr(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.adapter.Close() })
	w.adapter.AddCredential(cloudpeer.Credential{Tenant: tenant, AuthID: authID, Password: password})
	w.nb, err = cloudpeer.NewNorthbound(ctxT(t), hub.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.nb.Close)
	w.app = mqtt.New(mqtt.Options{URL: w.local.URL(), ClientID: "app", AutoReconnect: true, MaxReconnectInterval: 200 * time.Millisecond})
	if err := w.app.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.app.Close)
	w.status = kantotest.Record(t, w.app, "edge/connection/remote/status")
	w.events = kantotest.Record(t, w.app, "command//#")
	w.settings = map[string]any{
		"address":          "tcp://" + w.adapter.Addr(),
		"deviceId":         deviceID,
		"tenantId":         tenant,
		"authId":           authID,
		"password":         password,
		"clientId":         "gw-hub",
		"localAddress":     w.local.URL(),
		"provisioningFile": filepath.Join(w.dir, "provisioning.json"),
		"thingsDb":         filepath.Join(w.dir, "db", "things.db"),
		"bufferFile":       filepath.Join(w.dir, "buffer.db"),
		"logFile":          "",
		"logLevel":         "DEBUG",
	}
	return w
}

var env = []string{"HUB_CONNECT_INIT=0.2", "HUB_CONNECT_MAX=0.5", "HUB_CONNECT_MUL=1.5", "HUB_PARAMS_ANNOUNCE_TIMEOUT=0.1"}

func (w *world) start() { w.proc = kantotest.Start(w.t, w.dir, "local-digital-twins", w.settings, env) }

func (w *world) publish(topic, payload string) {
	w.t.Helper()
	if err := w.app.Publish(ctxT(w.t), mqtt.Message{Topic: topic, Payload: []byte(payload), QoS: 1}); err != nil {
		w.t.Fatal(err)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

type envelope struct {
	Topic    string         `json:"topic"`
	Headers  map[string]any `json:"headers"`
	Path     string         `json:"path"`
	Value    any            `json:"value"`
	Fields   string         `json:"fields"`
	Status   int            `json:"status"`
	Revision int64          `json:"revision"`
}

func parse(p []byte) envelope {
	var e envelope
	_ = json.Unmarshal(p, &e)
	return e
}

func cmd(thing, action, path string, value any, corr string) string {
	ns, name, _ := strings.Cut(thing, ":")
	e := map[string]any{"topic": ns + "/" + name + "/things/twin/commands/" + action, "path": path,
		"headers": map[string]any{"correlation-id": corr}}
	if value != nil {
		e["value"] = value
	}
	b, _ := json.Marshal(e)
	return string(b)
}

func withCorr(corr string) func([]byte) bool {
	return func(p []byte) bool { return parse(p).Headers["correlation-id"] == corr }
}

// hubSaw waits until the hub got a twin command matching pred.
func (w *world) hubSaw(what string, pred func(envelope) bool) envelope {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		// One snapshot: a message arriving between two reads of the list
		// would otherwise be skipped and waited for in vain.
		all := w.nb.Messages("event/#")
		for _, m := range all {
			if e := parse(m.Payload); pred(e) {
				return e
			}
		}
		if _, err := w.nb.Await(ctx, "event/#", len(all)+1); err != nil {
			var got []string
			for _, m := range w.nb.Messages("event/#") {
				got = append(got, m.Topic+" "+string(m.Payload))
			}
			w.t.Fatalf("hub never saw %s; got:\n%s", what, strings.Join(got, "\n"))
		}
	}
}

// Local commands over MQTT: the response and the event reach the local
// app on upstream's topics, the command reaches the cloud, and thing info
// is answered.
func TestLocalCommandsEndToEnd(t *testing.T) {
	w := newWorld(t)
	info := kantotest.Record(t, w.app, "edge/thing/response")
	w.start()
	w.status.AwaitTopic(t, 0, "#", kantotest.StatusIs("connected"))
	info.AwaitTopic(t, 0, "#", func(p []byte) bool { return string(p) == `{"deviceId":"ns:gw","tenantId":"T"}` })

	w.publish("e", cmd(deviceID, "modify", "/features/meter", map[string]any{"properties": map[string]any{"x": 1}}, "c1"))
	resp, _ := w.events.AwaitTopic(t, 0, "command///req//modify-response", withCorr("c1"))
	if e := parse(resp.Payload); e.Status != 201 {
		t.Errorf("modify status %d, want 201", e.Status)
	}
	w.events.AwaitTopic(t, 0, "command///req//created", withCorr("c1"))
	w.hubSaw("the forwarded modify", func(e envelope) bool {
		return e.Path == "/features/meter" && e.Headers["correlation-id"] == "c1"
	})

	// A child thing answers on command//<id>/req//…
	w.publish("event/T/ns:gw:edge:containers", cmd("ns:gw:edge:containers", "retrieve", "/features/nope", nil, "c2"))
	resp, _ = w.events.AwaitTopic(t, 0, "command//ns:gw:edge:containers/req//errors-response", withCorr("c2"))
	if e := parse(resp.Payload); e.Status != 404 || e.Value.(map[string]any)["error"] != "things:feature.notfound" {
		t.Errorf("retrieve of a missing feature: %s", resp.Payload)
	}
	// A local app's device command subscription is mirrored on the hub,
	// and dropped when the app leaves.
	app2 := mqtt.New(mqtt.Options{URL: w.local.URL(), ClientID: "app2"})
	if err := app2.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	_ = app2.Subscribe(ctxT(t), "c//ns:gw:edge:containers/q/#", 1, func(context.Context, mqtt.Message) {})
	if _, err := w.nb.AwaitSubscription(ctxT(t), "command//ns:gw:edge:containers/req/#", true); err != nil {
		t.Fatal(err)
	}
	app2.Close()
	if _, err := w.nb.AwaitSubscription(ctxT(t), "command//ns:gw:edge:containers/req/#", false); err != nil {
		t.Fatal(err)
	}
	// Thing info is answered on request too.
	w.publish("edge/thing/request", "")
	info.Await(t, "a second thing info", func(ms []mqtt.Message) bool { return len(ms) >= 2 })
}

// The twins survive kill -9: a modify acknowledged before the kill is
// there after the restart.
func TestPersistenceAcrossKill9(t *testing.T) {
	w := newWorld(t)
	w.start()
	w.status.AwaitTopic(t, 0, "#", kantotest.StatusIs("connected"))
	for i := range 20 {
		w.publish("e", cmd(deviceID, "modify", fmt.Sprintf("/features/f%d", i), map[string]any{"properties": map[string]any{"i": i}}, fmt.Sprintf("m%d", i)))
	}
	w.events.AwaitTopic(t, 0, "command///req//modify-response", withCorr("m19"))
	w.proc.Stop(syscall.SIGKILL)
	_, idx := w.status.AwaitTopic(t, 0, "#", kantotest.StatusIs("CONNECTION_UNKNOWN"))
	w.start()
	w.status.AwaitTopic(t, idx, "#", kantotest.StatusIs("connected"))
	w.publish("e", cmd(deviceID, "retrieve", "/features", nil, "r1"))
	resp, _ := w.events.AwaitTopic(t, 0, "command///req//retrieve-response", withCorr("r1"))
	fs, _ := parse(resp.Payload).Value.(map[string]any)
	if len(fs) != 20 {
		t.Fatalf("after kill -9: %d features, want 20: %s", len(fs), resp.Payload)
	}
	for i := range 20 {
		f, _ := fs[fmt.Sprintf("f%d", i)].(map[string]any)
		p, _ := f["properties"].(map[string]any)
		if fmt.Sprint(p["i"]) != fmt.Sprint(i) {
			t.Errorf("feature f%d: %v", i, f)
		}
	}
}

// Sync in both directions after an outage: while the cloud is away the
// device changes two features, deletes a third and a child thing, and
// publishes telemetry; the cloud changes a desired property. After the
// outage the cloud gets the retrieve, its desired value reaches local apps,
// the offline changes and deletions go up, and every telemetry message
// arrives, in order.
func TestSyncAfterOutage(t *testing.T) {
	w := newWorld(t)
	w.start()
	_, idx := w.status.AwaitTopic(t, 0, "#", kantotest.StatusIs("connected"))
	w.publish("e", cmd(deviceID, "modify", "/", map[string]any{"features": map[string]any{
		"a": map[string]any{"properties": map[string]any{"v": 1}, "desiredProperties": map[string]any{"v": 1}},
		"b": map[string]any{"properties": map[string]any{"v": 1}},
		"c": map[string]any{"properties": map[string]any{"v": 1}},
		"d": map[string]any{"properties": map[string]any{"v": 1}, "desiredProperties": map[string]any{"on": true}},
	}}, "init"))
	w.publish("event/T/ns:gw:child", cmd("ns:gw:child", "modify", "/features/x", map[string]any{}, "child"))
	w.hubSaw("the initial thing", func(e envelope) bool { return e.Headers["correlation-id"] == "init" })
	w.hubSaw("the child", func(e envelope) bool { return e.Headers["correlation-id"] == "child" })

	w.adapter.Cut()
	_, idx = w.status.AwaitTopic(t, idx, "#", kantotest.StatusIs("CONNECTION_ERROR"))
	w.publish("e", cmd(deviceID, "modify", "/features/a/properties/v", 2, "off1"))
	w.publish("e", cmd(deviceID, "modify", "/features/b", map[string]any{"properties": map[string]any{"v": 2}}, "off2"))
	w.publish("e", cmd(deviceID, "delete", "/features/c", nil, "off3"))
	w.publish("event/T/ns:gw:child", cmd("ns:gw:child", "delete", "/", nil, "off4"))
	w.publish("event/T/ns:gw:new", cmd("ns:gw:new", "create", "/", map[string]any{"attributes": map[string]any{"born": "offline"}}, "off5"))
	const n = 200
	for i := range n {
		w.publish("t", fmt.Sprintf(`{"seq":%d}`, i))
	}
	// Local messages are handled one after the other: once the answer to
	// this fence is out, every offline command was handled (and found the
	// cloud offline) before the cloud comes back.
	w.publish("e", cmd(deviceID, "retrieve", "/features/a", nil, "fence"))
	w.events.AwaitTopic(t, 0, "command///req//retrieve-response", withCorr("fence"))

	// The cloud answers the sync's retrieve with a desired value changed
	// while the device was offline, and without d's desired properties
	// (removed in the cloud meanwhile).
	desired := w.events // local desired change arrives as an event
	w.adapter.Restore()
	w.status.AwaitTopic(t, idx, "#", kantotest.StatusIs("connected"))
	retrieve := w.hubSaw("the desired-properties retrieve", func(e envelope) bool {
		return strings.HasSuffix(e.Topic, "/commands/retrieve") && e.Fields != ""
	})
	if retrieve.Fields != "features(a/desiredProperties,b/desiredProperties,d/desiredProperties)" || retrieve.Headers["reply-to"] != "command/T" {
		t.Errorf("retrieve fields %q reply-to %v", retrieve.Fields, retrieve.Headers["reply-to"])
	}
	answer, _ := json.Marshal(map[string]any{"topic": "ns/gw/things/twin/commands/retrieve", "path": "/", "status": 200,
		"headers": map[string]any{"correlation-id": retrieve.Headers["correlation-id"]},
		"value":   map[string]any{"features": map[string]any{"a": map[string]any{"desiredProperties": map[string]any{"v": 9}}}}})
	if err := w.nb.Send(ctxT(t), "command//ns:gw/req//retrieve", answer); err != nil {
		t.Fatal(err)
	}
	ev, _ := desired.AwaitTopic(t, 0, "command///req//modified", func(p []byte) bool {
		return parse(p).Path == "/features/a/desiredProperties"
	})
	if v := parse(ev.Payload).Value.(map[string]any)["v"]; fmt.Sprint(v) != "9" {
		t.Errorf("local desired after sync: %s", ev.Payload)
	}
	// Desired properties the cloud no longer has are removed locally, and
	// local apps hear of it as upstream tells them: a "modified" event
	// with a null value (not "deleted").
	ev, _ = desired.AwaitTopic(t, 0, "command///req//modified", func(p []byte) bool {
		return parse(p).Path == "/features/d/desiredProperties"
	})
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(ev.Payload, &raw); err != nil {
		t.Fatal(err)
	}
	if e := parse(ev.Payload); e.Topic != "ns/gw/things/twin/events/modified" || string(raw["value"]) != "null" ||
		e.Headers["content-type"] != "application/vnd.eclipse.ditto+json" || e.Headers["response-required"] != false || e.Revision == 0 {
		t.Errorf("event for desired properties gone from the cloud: %s", ev.Payload)
	}
	w.hubSaw("a's reported properties only", func(e envelope) bool {
		return e.Path == "/features/a/properties" && strings.HasSuffix(e.Topic, "/modify") && fmt.Sprint(e.Value.(map[string]any)["v"]) == "2"
	})
	w.hubSaw("b as a whole", func(e envelope) bool {
		return e.Path == "/features/b" && strings.HasSuffix(e.Topic, "/modify")
	})
	merge := w.hubSaw("the merge-null patch for c", func(e envelope) bool {
		return e.Path == "/features" && strings.HasSuffix(e.Topic, "/merge")
	})
	if v, ok := merge.Value.(map[string]any)["c"]; !ok || v != nil || merge.Headers["content-type"] != "application/merge-patch+json" {
		t.Errorf("merge patch %+v", merge)
	}
	w.hubSaw("the thing created offline, whole", func(e envelope) bool {
		v, _ := e.Value.(map[string]any)
		a, _ := v["attributes"].(map[string]any)
		return e.Topic == "ns/gw:new/things/twin/commands/modify" && e.Path == "/" && a["born"] == "offline"
	})
	w.hubSaw("the child's delete", func(e envelope) bool {
		return e.Topic == "ns/gw:child/things/twin/commands/delete" && e.Path == "/"
	})
	got, err := w.nb.Await(ctxT(t), "telemetry/#", n)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range got[:n] {
		if want := fmt.Sprintf(`{"seq":%d}`, i); string(m.Payload) != want || m.Topic != "telemetry/T/ns:gw" {
			t.Fatalf("telemetry %d: %s %s, want %s", i, m.Topic, m.Payload, want)
		}
	}
	// The local thing really lost c and d's desired properties, the
	// child is gone, and no "deleted" event went out for d.
	w.publish("e", cmd(deviceID, "retrieve", "/features/d", nil, "rd"))
	resp, _ := w.events.AwaitTopic(t, 0, "command///req//retrieve-response", withCorr("rd"))
	if d, _ := parse(resp.Payload).Value.(map[string]any); d == nil || d["desiredProperties"] != nil || d["properties"] == nil {
		t.Errorf("local d after sync: %s", resp.Payload)
	}
	for _, m := range w.events.All() {
		if m.Topic == "command///req//deleted" && strings.HasSuffix(parse(m.Payload).Path, "/desiredProperties") {
			t.Errorf("unexpected local event %s: %s", m.Topic, m.Payload)
		}
	}
	w.publish("e", cmd(deviceID, "retrieve", "/features/c", nil, "r1"))
	w.events.AwaitTopic(t, 0, "command///req//errors-response", withCorr("r1"))
	w.publish("event/T/ns:gw:child", cmd("ns:gw:child", "retrieve", "/", nil, "r2"))
	resp, _ = w.events.AwaitTopic(t, 0, "command//ns:gw:child/req//errors-response", withCorr("r2"))
	if e := parse(resp.Payload); e.Value.(map[string]any)["error"] != "things:thing.notfound" {
		t.Errorf("deleted child thing: %s", resp.Payload)
	}
}

// TestTraceAndMQTTLogEnv: TRACE_TOPIC_PREFIX traces the payloads of the
// listed topics only, MQTT_LOG_LEVEL turns the MQTT library's log on
// (reference §1.5.2: both read by every connector).
func TestTraceAndMQTTLogEnv(t *testing.T) {
	w := newWorld(t)
	w.proc = kantotest.Start(t, w.dir, "local-digital-twins", w.settings, append(append([]string(nil), env...), "TRACE_TOPIC_PREFIX=t", "MQTT_LOG_LEVEL=DEBUG"))
	w.status.AwaitTopic(t, 0, "#", kantotest.StatusIs("connected"))
	w.publish("e", cmd(deviceID, "modify", "/features/untraced", map[string]any{"properties": map[string]any{"x": 1}}, "c1"))
	w.publish("t", `{ "traced" : 1 }`)
	if _, err := w.nb.Await(ctxT(t), "telemetry/#", 1); err != nil {
		t.Fatal(err)
	}
	kantotest.CheckTraceT(t, w.proc.Log.String(), "local-digital-twins")
}
