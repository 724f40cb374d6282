package awsiot_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/services/internal/cloudpeer/awsiot"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// device is a client of the simulated endpoint over mutual TLS.
type device struct {
	t    *testing.T
	c    *mqtt.Client
	mu   sync.Mutex
	msgs map[string][]string
	ch   chan struct{}
}

func newDevice(t *testing.T, cloud *awsiot.Cloud, cn string) *device {
	cert, key := cloud.DeviceFiles(t, strings.ReplaceAll(cn, ":", "_"), cn)
	d := &device{t: t, msgs: map[string][]string{}, ch: make(chan struct{})}
	d.c = mqtt.New(mqtt.Options{URL: cloud.Endpoint, ClientID: cn, CleanSession: true, TLS: cloud.DeviceTLS(t, cert, key)})
	ctx := ctxT(t)
	if err := d.c.Subscribe(ctx, "$aws/#", 1, func(_ context.Context, m mqtt.Message) {
		d.mu.Lock()
		d.msgs[m.Topic] = append(d.msgs[m.Topic], string(m.Payload))
		close(d.ch)
		d.ch = make(chan struct{})
		d.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := d.c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.c.Close)
	return d
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// call publishes payload on topic and returns the n-th answer on reply.
func (d *device) call(topic, payload, reply string, n int) map[string]any {
	d.t.Helper()
	if err := d.c.Publish(ctxT(d.t), mqtt.Message{Topic: topic, Payload: []byte(payload), QoS: 1}); err != nil {
		d.t.Fatal(err)
	}
	return d.await(reply, n)
}

func (d *device) await(topic string, n int) map[string]any {
	d.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		d.mu.Lock()
		got, ch := d.msgs[topic], d.ch
		d.mu.Unlock()
		if len(got) >= n {
			var v map[string]any
			if err := json.Unmarshal([]byte(got[n-1]), &v); err != nil {
				d.t.Fatal(err)
			}
			delete(v, "timestamp")
			return v
		}
		select {
		case <-ch:
		case <-deadline:
			d.t.Fatalf("no message %d on %s", n, topic)
		}
	}
}

func TestShadowService(t *testing.T) {
	cloud := awsiot.NewCloud(t, awsiot.Options{})
	d := newDevice(t, cloud, "ns:dev")
	p := "$aws/things/ns:dev/shadow"
	// get of a shadow that does not exist
	got := d.call(p+"/get", `{"clientToken":"t0"}`, p+"/get/rejected", 1)
	if diff := cmp.Diff(map[string]any{"code": 404.0, "message": "No shadow exists with name: 'ns:dev'", "clientToken": "t0"}, got); diff != "" {
		t.Errorf("get rejected -want +got:\n%s", diff)
	}
	got = d.call(p+"/update", `{"state":{"reported":{"a":1,"o":{"x":1,"y":2}}},"clientToken":"t1"}`, p+"/update/accepted", 1)
	delete(got, "metadata")
	if diff := cmp.Diff(map[string]any{"state": map[string]any{"reported": map[string]any{"a": 1.0, "o": map[string]any{"x": 1.0, "y": 2.0}}}, "version": 1.0, "clientToken": "t1"}, got); diff != "" {
		t.Errorf("update accepted -want +got:\n%s", diff)
	}
	// null deletes, arrays replace
	d.call(p+"/update", `{"state":{"reported":{"o":{"x":null},"arr":[1,2]}}}`, p+"/update/accepted", 2)
	d.call(p+"/update", `{"state":{"reported":{"arr":[3]}}}`, p+"/update/accepted", 3)
	if diff := cmp.Diff(map[string]any{"a": json.Number("1"), "o": map[string]any{"y": json.Number("2")}, "arr": []any{json.Number("3")}}, cloud.Service.Reported("ns:dev", "")); diff != "" {
		t.Errorf("reported -want +got:\n%s", diff)
	}
	// desired from the cloud: a delta to the device
	if err := cloud.Service.UpdateDesired(ctxT(t), "ns:dev", "", map[string]any{"a": 5, "o": map[string]any{"y": 2}}); err != nil {
		t.Fatal(err)
	}
	delta := d.await(p+"/update/delta", 1)
	if diff := cmp.Diff(map[string]any{"a": 5.0}, delta["state"]); diff != "" || delta["version"] != 4.0 {
		t.Errorf("delta %v -want +got:\n%s", delta, diff)
	}
	got = d.call(p+"/get", `{}`, p+"/get/accepted", 1)
	if st := got["state"].(map[string]any); st["delta"] == nil || got["version"] != 4.0 {
		t.Errorf("get accepted %v", got)
	}
	// version conflict, bad payloads
	got = d.call(p+"/update", `{"state":{"reported":{"a":2}},"version":1}`, p+"/update/rejected", 1)
	if got["code"] != 409.0 || got["message"] != "Version conflict" {
		t.Errorf("conflict %v", got)
	}
	got = d.call(p+"/update", `not json`, p+"/update/rejected", 2)
	if got["code"] != 400.0 {
		t.Errorf("invalid json %v", got)
	}
	got = d.call(p+"/update", `{"clientToken":"x"}`, p+"/update/rejected", 3)
	if got["message"] != "Missing required node: state" {
		t.Errorf("missing state %v", got)
	}
	got = d.call(p+"/update", `{"state":{"reported":{"big":"`+strings.Repeat("x", 9000)+`"}}}`, p+"/update/rejected", 4)
	if got["code"] != 413.0 {
		t.Errorf("too large %v", got)
	}
	// named shadows, delete keeps the version
	n := "$aws/things/ns:dev/shadow/name/meter"
	d.call(n+"/update", `{"state":{"reported":{"v":1}}}`, n+"/update/accepted", 1)
	got = d.call(n+"/delete", ``, n+"/delete/accepted", 1)
	if got["version"] != 1.0 {
		t.Errorf("delete accepted %v", got)
	}
	got = d.call(n+"/delete", ``, n+"/delete/rejected", 1)
	if got["message"] != "No shadow exists with name: 'ns:dev~meter'" {
		t.Errorf("second delete %v", got)
	}
	got = d.call(n+"/update", `{"state":{"reported":{"v":2}}}`, n+"/update/accepted", 2)
	if got["version"] != 2.0 {
		t.Errorf("version after delete %v", got)
	}
	docs := d.await(n+"/update/documents", 2)
	if docs["previous"] != nil {
		t.Errorf("documents after delete: previous %v", docs["previous"])
	}
}

func TestFleetProvisioning(t *testing.T) {
	cloud := awsiot.NewCloud(t, awsiot.Options{Templates: map[string]awsiot.Template{
		"kanto": {ThingName: func(p map[string]string) (string, error) {
			if p["SerialNumber"] == "" {
				return "", errors.New("SerialNumber is required")
			}
			return "ns:" + p["SerialNumber"], nil
		}},
	}})
	d := newDevice(t, cloud, "claim")
	created := d.call("$aws/certificates/create/json", `{}`, "$aws/certificates/create/json/accepted", 1)
	for _, k := range []string{"certificateId", "certificatePem", "privateKey", "certificateOwnershipToken"} {
		if s, _ := created[k].(string); s == "" {
			t.Errorf("create accepted without %s", k)
		}
	}
	tpl := "$aws/provisioning-templates/kanto/provision/json"
	req, _ := json.Marshal(map[string]any{"certificateOwnershipToken": created["certificateOwnershipToken"], "parameters": map[string]string{}})
	got := d.call(tpl, string(req), tpl+"/rejected", 1)
	if got["statusCode"] != 400.0 || got["errorCode"] != "InvalidParameters" {
		t.Errorf("rejected %v", got)
	}
	// The token was used up by the rejected attempt, as AWS does.
	created = d.call("$aws/certificates/create/json", `{}`, "$aws/certificates/create/json/accepted", 2)
	req, _ = json.Marshal(map[string]any{"certificateOwnershipToken": created["certificateOwnershipToken"], "parameters": map[string]string{"SerialNumber": "42"}})
	got = d.call(tpl, string(req), tpl+"/accepted", 1)
	if diff := cmp.Diff(map[string]any{"thingName": "ns:42", "deviceConfiguration": map[string]any{}}, got); diff != "" {
		t.Errorf("accepted -want +got:\n%s", diff)
	}
	if id, ok := cloud.Service.Thing("ns:42"); !ok || id != created["certificateId"] {
		t.Errorf("thing registered with %q, want %v", id, created["certificateId"])
	}
}
