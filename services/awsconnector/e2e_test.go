package awsconnector_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/internal/netproxy"
	"github.com/kantofw/kanto/services/internal/cloudpeer/awsiot"
	"github.com/kantofw/kanto/services/internal/kantotest"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

const device = "test:device"

type world struct {
	t        *testing.T
	dir      string
	cloud    *awsiot.Cloud
	proxy    *netproxy.Proxy
	app      *mqtt.Client
	status   *kantotest.Recorder
	local    *kantotest.Recorder
	settings map[string]any
	proc     *kantotest.Proc
}

var env = []string{"HUB_CONNECT_INIT=0.2", "HUB_CONNECT_MAX=0.5", "HUB_CONNECT_MUL=1.5"}

func newWorld(t *testing.T, o awsiot.Options) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir()}
	w.cloud = awsiot.NewCloud(t, o)
	var err error
	w.proxy, err = netproxy.New(w.cloud.Broker.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.proxy.Close() })
	lb := mosquittotest.Start(t, mosquittotest.Options{Extra: "max_queued_messages 100000\n"})
	w.app = mqtt.New(mqtt.Options{URL: lb.URL(), ClientID: "app", AutoReconnect: true, MaxReconnectInterval: 200 * time.Millisecond})
	if err := w.app.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.app.Close)
	w.status = kantotest.Record(t, w.app, "edge/connection/remote/status")
	w.local = kantotest.Record(t, w.app, "#")
	w.settings = map[string]any{
		"address":      "tls://" + w.proxy.Addr(),
		"caCert":       w.cloud.CAFile,
		"localAddress": lb.URL(),
		"bufferFile":   filepath.Join(w.dir, "buffer.db"),
		"logFile":      "",
		"logLevel":     "DEBUG",
	}
	return w
}

func (w *world) withDevice(cn string) {
	cert, key := w.cloud.DeviceFiles(w.t, "device", cn)
	w.settings["cert"], w.settings["key"] = cert, key
}

func (w *world) start() { w.proc = kantotest.Start(w.t, w.dir, "aws-connector", w.settings, env) }

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

func twin(thing, action, path string, value any) string {
	ns, name, _ := strings.Cut(thing, ":")
	e := map[string]any{"topic": ns + "/" + name + "/things/twin/commands/" + action, "path": path, "headers": map[string]any{"correlation-id": "x"}}
	if value != nil {
		e["value"] = value
	}
	b, _ := json.Marshal(e)
	return string(b)
}

// reported waits until a shadow's reported state equals want (nil: the
// shadow does not exist).
func (w *world) reported(name string, want map[string]any) {
	w.t.Helper()
	var got map[string]any
	err := w.cloud.Service.Await(ctxT(w.t), "shadow "+name, func() bool {
		got = w.cloud.Service.Reported(device, name)
		return cmp.Equal(norm(got), norm(want))
	})
	if err != nil {
		w.t.Fatalf("shadow %q: got %v, want %v", name, got, want)
	}
}

func norm(v any) any {
	if m, ok := v.(map[string]any); ok && m == nil {
		return nil
	}
	b, _ := json.Marshal(v)
	var x any
	_ = json.Unmarshal(b, &x)
	return x
}

// Twin commands become shadow updates on a real broker over mutual TLS,
// modify removes keys with nulls, deletes remove named shadows; events and
// telemetry go out with x-timestamp; commands and replies round-trip.
func TestShadowsEndToEnd(t *testing.T) {
	w := newWorld(t, awsiot.Options{})
	w.withDevice(device)
	w.start()
	w.status.AwaitTopic(t, 0, "#", kantotest.StatusIs("connected"))
	w.local.AwaitTopic(t, 0, "edge/thing/response", func(p []byte) bool {
		return string(p) == `{"deviceId":"test:device","tenantId":"default-tenant-id"}`
	})

	w.publish("e", twin(device, "modify", "/", map[string]any{"attributes": map[string]any{"a": 1},
		"features": map[string]any{"meter": map[string]any{"properties": map[string]any{"status": 100, "obsolete": "true"}}}}))
	w.publish("e", twin(device+":edge:containers", "modify", "/features/c1", map[string]any{"definition": []string{"x:y:1"}}))
	w.reported("", map[string]any{"a": 1})
	w.reported("meter", map[string]any{"status": 100, "obsolete": "true"})
	w.reported("edge:containers:c1", map[string]any{"definition": []any{"x:y:1"}})

	w.publish("e", twin(device, "modify", "/features/meter/properties", map[string]any{"status": 200}))
	w.reported("meter", map[string]any{"status": 200})
	w.publish("e", twin(device, "delete", "/features/meter", nil))
	w.reported("meter", nil)

	w.publish("t", `{"n":1}`)
	got, err := w.cloud.NB.Await(ctxT(t), "telemetry/default-tenant-id/test:device", 1)
	if err != nil {
		t.Fatal(err)
	}
	var tel struct {
		Headers map[string]any `json:"headers"`
	}
	if json.Unmarshal(got[0].Payload, &tel); tel.Headers["x-timestamp"] == nil {
		t.Errorf("telemetry without x-timestamp: %s", got[0].Payload)
	}

	// A command from AWS for the device reaches local apps on both forms;
	// the reply goes back once.
	_ = w.app.Subscribe(ctxT(t), "command//test:device/req/#", 1, func(_ context.Context, m mqtt.Message) {
		parts := strings.Split(m.Topic, "/")
		w.app.PublishAsync(mqtt.Message{Topic: "command//test:device/res/" + parts[4] + "/200", QoS: 1,
			Payload: []byte(strings.Replace(string(m.Payload), "inbox", "outbox", 1))})
	})
	st, body, err := w.cloud.NB.Command(ctxT(t), device, "ping",
		[]byte(`{"topic":"test/device/things/live/messages/ping","headers":{"correlation-id":"k1"},"path":"/inbox/messages/ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	if st != "200" || !strings.Contains(string(body), "outbox") {
		t.Errorf("command reply %s %s", st, body)
	}
	w.local.AwaitTopic(t, 0, "c//test:device/q/#", nil)
	// A command for another device is not handed to local apps.
	other := kantotest.Record(t, w.app, "command//other:dev/req/#")
	_ = w.cloud.NB.Send(ctxT(t), "command//other:dev/req/r9/x", []byte(`{"topic":"other/dev/things/live/messages/x","path":"/"}`))
	_ = w.cloud.NB.Send(ctxT(t), "cmd//test:device/q/r2/y", []byte(`{"topic":"test/device/things/live/messages/y","path":"/"}`))
	w.local.AwaitTopic(t, 0, "command//test:device/req/r2/y", nil)
	w.local.AwaitTopic(t, 0, "c//test:device/q/r2/y", nil)
	if n := len(other.All()); n != 0 {
		t.Errorf("a command for another device reached local apps")
	}
}

// While AWS is unreachable, twin updates and telemetry are buffered; after
// the outage everything arrives, in order, and the shadows are current.
func TestOutageNothingLost(t *testing.T) {
	w := newWorld(t, awsiot.Options{})
	w.withDevice(device)
	w.start()
	_, idx := w.status.AwaitTopic(t, 0, "#", kantotest.StatusIs("connected"))
	w.proxy.Cut()
	_, idx = w.status.AwaitTopic(t, idx, "#", kantotest.StatusIs("CONNECTION_ERROR"))
	const n = 300
	for i := range n {
		w.publish("t", fmt.Sprintf(`{"seq":%d}`, i))
		if i%50 == 0 {
			w.publish("e", twin(device, "modify", "/features/f/properties/seq", i))
		}
	}
	w.proxy.Restore()
	w.status.AwaitTopic(t, idx, "#", kantotest.StatusIs("connected"))
	got, err := w.cloud.NB.Await(ctxT(t), "telemetry/#", n)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range got[:n] {
		var v struct{ Seq int }
		if json.Unmarshal(m.Payload, &v); v.Seq != i {
			t.Fatalf("telemetry %d out of order: %s", i, m.Payload)
		}
	}
	w.reported("f", map[string]any{"seq": 250})
}

// Fleet provisioning by claim: the device gets a certificate and a thing
// name, stores them, reconnects with them, and keeps them across restarts.
func TestFleetProvisioning(t *testing.T) {
	w := newWorld(t, awsiot.Options{Templates: map[string]awsiot.Template{"kanto": {ThingName: func(p map[string]string) (string, error) {
		if p["SerialNumber"] == "" {
			return "", errors.New("SerialNumber is required")
		}
		return "test:sn" + p["SerialNumber"], nil
	}}}})
	claimCert, claimKey := w.cloud.DeviceFiles(t, "claim", "claim")
	w.settings["claimCert"], w.settings["claimKey"] = claimCert, claimKey
	w.settings["provisioningTemplate"] = "kanto"
	w.settings["provisioningParameters"] = map[string]string{"SerialNumber": "42"}
	w.settings["cert"] = filepath.Join(w.dir, "id", "device.crt")
	w.settings["key"] = filepath.Join(w.dir, "id", "device.key")
	w.settings["thingNameFile"] = filepath.Join(w.dir, "id", "thing-name")
	w.start()
	_, idx := w.status.AwaitTopic(t, 0, "#", kantotest.StatusIs("connected"))
	w.local.AwaitTopic(t, 0, "edge/thing/response", func(p []byte) bool { return strings.Contains(string(p), `"deviceId":"test:sn42"`) })
	name, err := os.ReadFile(filepath.Join(w.dir, "id", "thing-name"))
	if err != nil || strings.TrimSpace(string(name)) != "test:sn42" {
		t.Fatalf("thing name file: %q %v", name, err)
	}
	if fi, err := os.Stat(filepath.Join(w.dir, "id", "device.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("device key: %v %v", fi, err)
	}
	w.publish("e", twin("test:sn42", "modify", "/attributes", map[string]any{"p": true}))
	err = w.cloud.Service.Await(ctxT(t), "classic shadow", func() bool { return w.cloud.Service.Reported("test:sn42", "") != nil })
	if err != nil {
		t.Fatal(err)
	}
	// A restart uses the stored identity: no new certificate is requested.
	creates := len(w.cloud.Service.Requests("$aws/certificates/create/json"))
	w.proc.Stop(9)
	_, idx = w.status.AwaitTopic(t, idx, "#", kantotest.StatusIs("CONNECTION_UNKNOWN"))
	w.start()
	w.status.AwaitTopic(t, idx, "#", kantotest.StatusIs("connected"))
	if got := len(w.cloud.Service.Requests("$aws/certificates/create/json")); got != creates {
		t.Errorf("%d certificate requests after restart, want %d", got, creates)
	}
}

// A rejected provisioning reports PROVISIONING_ERROR, stores nothing, and
// is retried.
func TestFleetProvisioningRejected(t *testing.T) {
	w := newWorld(t, awsiot.Options{Templates: map[string]awsiot.Template{"kanto": {ThingName: func(p map[string]string) (string, error) {
		return "", errors.New("device not on the allow list")
	}}}})
	claimCert, claimKey := w.cloud.DeviceFiles(t, "claim", "claim")
	w.settings["claimCert"], w.settings["claimKey"] = claimCert, claimKey
	w.settings["provisioningTemplate"] = "kanto"
	w.settings["cert"] = filepath.Join(w.dir, "id", "device.crt")
	w.settings["key"] = filepath.Join(w.dir, "id", "device.key")
	w.settings["thingNameFile"] = filepath.Join(w.dir, "id", "thing-name")
	w.start()
	_, idx := w.status.AwaitTopic(t, 0, "#", kantotest.StatusIs("PROVISIONING_ERROR"))
	w.status.AwaitTopic(t, idx+1, "#", kantotest.StatusIs("PROVISIONING_ERROR"))
	for _, f := range []string{"device.crt", "device.key", "thing-name"} {
		if _, err := os.Stat(filepath.Join(w.dir, "id", f)); err == nil {
			t.Errorf("%s stored after a rejected provisioning", f)
		}
	}
	// An attempt may be lost on a loaded machine (it then times out and is
	// retried too), so wait for the second RegisterThing rather than expect
	// it right after the second error.
	deadline := time.Now().Add(90 * time.Second)
	for {
		n := len(w.cloud.Service.Requests("$aws/provisioning-templates/kanto/provision/json"))
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d RegisterThing attempts, want retries", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A certificate whose CN is not a device id stops the connector at start
// with exit code 1.
func TestBadCertificateCN(t *testing.T) {
	w := newWorld(t, awsiot.Options{})
	w.withDevice("not-a-device-id")
	w.start()
	code, err := w.proc.Wait(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if code != 1 || !strings.Contains(w.proc.Log.String(), `CN "not-a-device-id" is not a device id`) {
		t.Errorf("exit %d, log:\n%s", code, w.proc.Log.String())
	}
}

// Modify semantics hold across a restart: the connector fetches a shadow it
// does not know yet before the first modify, so stale keys are removed
// (upstream's cache was lost on restart).
func TestModifyAfterRestart(t *testing.T) {
	w := newWorld(t, awsiot.Options{})
	w.withDevice(device)
	w.start()
	_, idx := w.status.AwaitTopic(t, 0, "#", kantotest.StatusIs("connected"))
	w.publish("e", twin(device, "modify", "/features/meter/properties", map[string]any{"status": 100, "obsolete": true}))
	w.reported("meter", map[string]any{"status": 100, "obsolete": true})
	// A clean stop, so the buffer holds nothing that would be sent again
	// (a re-sent first modify would refill the cache by itself).
	w.proc.Stop(syscall.SIGTERM)
	_, idx = w.status.AwaitTopic(t, idx, "#", kantotest.StatusIs("CONNECTION_CLOSED"))
	w.start()
	w.status.AwaitTopic(t, idx, "#", kantotest.StatusIs("connected"))
	w.publish("e", twin(device, "modify", "/features/meter/properties", map[string]any{"status": 200}))
	w.reported("meter", map[string]any{"status": 200})
}

// TestTraceAndMQTTLogEnv: TRACE_TOPIC_PREFIX traces the payloads of the
// listed topics only, MQTT_LOG_LEVEL turns the MQTT library's log on
// (reference §1.5.2: both read by every connector).
func TestTraceAndMQTTLogEnv(t *testing.T) {
	w := newWorld(t, awsiot.Options{})
	w.withDevice(device)
	w.proc = kantotest.Start(t, w.dir, "aws-connector", w.settings, append(append([]string(nil), env...), "TRACE_TOPIC_PREFIX=t", "MQTT_LOG_LEVEL=DEBUG"))
	w.status.AwaitTopic(t, 0, "#", kantotest.StatusIs("connected"))
	// The event goes first: local messages are taken in order, so once
	// the telemetry is at the cloud the event was handled too.
	w.publish("e", twin(device, "modify", "/features/f/properties/untraced", 1))
	w.publish("t", `{ "traced" : 1 }`)
	if _, err := w.cloud.NB.Await(ctxT(t), "telemetry/#", 1); err != nil {
		t.Fatal(err)
	}
	kantotest.CheckTraceT(t, w.proc.Log.String(), "aws-connector")
}
