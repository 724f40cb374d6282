package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/containers/cmtest"
	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// recorder keeps the messages of a topic filter.
type recorder struct {
	mu   sync.Mutex
	msgs []mqtt.Message
}

func (r *recorder) handle(_ context.Context, m mqtt.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

// find waits for a message whose envelope satisfies ok.
func (r *recorder) find(t *testing.T, what string, ok func(topic string, e *ditto.Envelope) bool) *ditto.Envelope {
	t.Helper()
	var found *ditto.Envelope
	cmtest.WaitFor(t, 60*time.Second, what, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, m := range r.msgs {
			if e, err := ditto.Parse(m.Payload); err == nil && ok(m.Topic, e) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

const thing = "org.kanto:dev1:edge:containers"

func command(t *testing.T, c *mqtt.Client, reqID, feature, op string, value any) {
	t.Helper()
	env := ditto.Envelope{
		Topic:   "org.kanto/dev1:edge:containers/things/live/messages/" + op,
		Headers: ditto.Headers{"response-required": true, "correlation-id": reqID, "content-type": "application/json"},
		Path:    "/features/" + feature + "/inbox/messages/" + op,
	}
	if value != nil {
		b, _ := json.Marshal(value)
		env.Value = b
	}
	b, _ := env.Marshal()
	if err := c.Publish(context.Background(), mqtt.Message{Topic: "command//" + thing + "/req/" + reqID + "/" + op, Payload: b, QoS: 1}); err != nil {
		t.Fatal(err)
	}
}

// TestThings drives ContainerFactory, Container:<id> and Metrics over a
// real Mosquitto, with the test answering edge/thing/request as the
// suite-connector would.
func TestThings(t *testing.T) {
	cmtest.Requirements(t)
	broker := mosquittotest.Start(t, mosquittotest.Options{})
	ctx := context.Background()
	peer := mqtt.New(mqtt.Options{URL: broker.URL(), ClientID: "test-peer", CleanSession: true})
	if err := peer.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(peer.Close)
	err := peer.Subscribe(ctx, "edge/thing/request", 1, func(ctx context.Context, _ mqtt.Message) {
		_ = peer.Publish(ctx, mqtt.Message{Topic: "edge/thing/response", QoS: 1, Payload: []byte(`{"deviceId":"org.kanto:dev1","tenantId":"t1","policyId":"org.kanto:p"}`)})
	})
	if err != nil {
		t.Fatal(err)
	}
	events, responses := &recorder{}, &recorder{}
	if err := peer.Subscribe(ctx, "e/t1/"+thing, 1, events.handle); err != nil {
		t.Fatal(err)
	}
	if err := peer.Subscribe(ctx, "command//"+thing+"/res/#", 1, responses.handle); err != nil {
		t.Fatal(err)
	}
	d := setup(t, "--things-enable=true", "--conn-broker-url", broker.URL())
	events.find(t, "ContainerFactory feature", func(_ string, e *ditto.Envelope) bool {
		return e.Path == "/features/ContainerFactory" && strings.HasSuffix(e.Topic, "/things/twin/commands/modify")
	})
	command(t, peer, "r1", "ContainerFactory", "createWithConfig", map[string]any{
		"imageRef": testImage, "name": "from-ditto", "start": true,
		"config": map[string]any{"cmd": []string{"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"}, "restartPolicy": map[string]any{"type": "NO"}},
	})
	resp := responses.find(t, "create response", func(topic string, e *ditto.Envelope) bool {
		return strings.HasPrefix(topic, "command//"+thing+"/res/r1/")
	})
	var id string
	if resp.Status != 200 || json.Unmarshal(resp.Value, &id) != nil || len(id) != 36 {
		t.Fatalf("create response: status %d value %s", resp.Status, resp.Value)
	}
	if resp.Headers.CorrelationID() != "r1" || resp.Path != "/features/ContainerFactory/outbox/messages/createWithConfig" {
		t.Errorf("response envelope: %+v", resp)
	}
	if c := get(t, d, id); c.Name != "from-ditto" || c.HostConfig.RestartPolicy.Type != "no" {
		t.Errorf("created container: name %q policy %+v", c.Name, c.HostConfig.RestartPolicy)
	}
	events.find(t, "RUNNING state", func(_ string, e *ditto.Envelope) bool {
		return e.Path == "/features/Container:"+id+"/properties/status/state" && strings.Contains(string(e.Value), `"status":"RUNNING"`)
	})
	command(t, peer, "r2", "Metrics", "request", map[string]any{"frequency": "1s", "filter": []map[string]any{{"originator": "Container:" + id, "id": []string{"memory.*", "pids", "cpu.utilization"}}}})
	data := events.find(t, "metrics data", func(_ string, e *ditto.Envelope) bool {
		return e.Path == "/features/Metrics/outbox/messages/data" && strings.Contains(string(e.Value), "cpu.utilization")
	})
	if !strings.Contains(string(data.Value), `"originator":"Container:`+id) || !strings.Contains(string(data.Value), `"id":"memory.used"`) || strings.Contains(string(data.Value), "net.readBytes") {
		t.Errorf("metrics data: %s", data.Value)
	}
	command(t, peer, "r3", "Container:"+id, "stopWithOptions", map[string]any{"force": true, "timeout": 5, "signal": "SIGTERM"})
	if r := responses.find(t, "stop response", func(topic string, _ *ditto.Envelope) bool {
		return strings.HasPrefix(topic, "command//"+thing+"/res/r3/")
	}); r.Status != 204 {
		t.Errorf("stop: %d %s", r.Status, r.Value)
	}
	events.find(t, "STOPPED state", func(_ string, e *ditto.Envelope) bool {
		return e.Path == "/features/Container:"+id+"/properties/status/state" && strings.Contains(string(e.Value), `"status":"STOPPED"`)
	})
	command(t, peer, "r4", "Container:"+id, "rename", "renamed-by-ditto")
	events.find(t, "renamed", func(_ string, e *ditto.Envelope) bool {
		return e.Path == "/features/Container:"+id+"/properties/status/name" && string(e.Value) == `"renamed-by-ditto"`
	})
	command(t, peer, "r5", "Container:nope", "start", nil)
	if r := responses.find(t, "unknown container", func(topic string, _ *ditto.Envelope) bool {
		return strings.HasPrefix(topic, "command//"+thing+"/res/r5/")
	}); r.Status != 404 {
		t.Errorf("unknown container: %d", r.Status)
	}
	command(t, peer, "r6", "Container:"+id, "remove", true)
	events.find(t, "feature deleted", func(_ string, e *ditto.Envelope) bool {
		return e.Path == "/features/Container:"+id && strings.HasSuffix(e.Topic, "/things/twin/commands/delete")
	})
	// SoftwareUpdatable: install a descriptor served over HTTP (checksum
	// checked), then remove it.
	desc := `{"container_name": "swu", "image": {"name": "` + testImage + `"}, "config": {"cmd": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, desc) }))
	defer srv.Close()
	sum := sha256.Sum256([]byte(desc))
	install := func(reqID, corr, checksum string) {
		command(t, peer, reqID, "SoftwareUpdatable", "install", map[string]any{
			"correlationId": corr,
			"softwareModules": []any{map[string]any{
				"softwareModule": map[string]string{"name": "swu", "version": "1"},
				"artifacts": []any{map[string]any{
					"filename": "swu.json", "download": map[string]any{"HTTP": map[string]string{"url": srv.URL}},
					"checksums": map[string]string{"SHA256": checksum},
				}},
			}},
		})
	}
	install("r8", "bad-sum", strings.Repeat("0", 64))
	events.find(t, "install rejected", func(_ string, e *ditto.Envelope) bool {
		return strings.HasSuffix(e.Path, "/status/lastOperation") && strings.Contains(string(e.Value), `"correlationId":"bad-sum"`) && strings.Contains(string(e.Value), "FINISHED_REJECTED")
	})
	install("r9", "good", hex.EncodeToString(sum[:]))
	events.find(t, "install finished", func(_ string, e *ditto.Envelope) bool {
		return strings.HasSuffix(e.Path, "/status/lastOperation") && strings.Contains(string(e.Value), `"correlationId":"good"`) && strings.Contains(string(e.Value), "FINISHED_SUCCESS")
	})
	swuID := strings.TrimSpace(cli(t, d, "list", "-q", "-n", "swu"))
	dep := events.find(t, "installed dependency", func(_ string, e *ditto.Envelope) bool {
		return strings.Contains(e.Path, "/status/installedDependencies/") && strings.Contains(e.Path, swuID)
	})
	if !strings.Contains(dep.Path, "docker.io%2Flibrary%2Fkcm-busybox."+swuID+":test") {
		t.Errorf("dependency key: %s", dep.Path)
	}
	command(t, peer, "r10", "SoftwareUpdatable", "remove", map[string]any{"correlationId": "rm", "forced": true,
		"software": []any{map[string]string{"group": "docker.io/library/kcm-busybox", "name": swuID, "version": "test"}}})
	events.find(t, "removed", func(_ string, e *ditto.Envelope) bool {
		return strings.HasSuffix(e.Path, "/status/lastOperation") && strings.Contains(string(e.Value), `"correlationId":"rm"`) && strings.Contains(string(e.Value), "FINISHED_SUCCESS")
	})
	if out, _, _ := d.CLI("list", "-q", "-n", "swu"); strings.TrimSpace(out) != "" {
		t.Errorf("swu still there: %q", out)
	}
	command(t, peer, "r7", "ContainerFactory", "create", map[string]any{"imageRef": ""})
	if r := responses.find(t, "empty imageRef", func(topic string, _ *ditto.Envelope) bool {
		return strings.HasPrefix(topic, "command//"+thing+"/res/r7/")
	}); r.Status != 500 || !strings.Contains(string(r.Value), "imageRef must be set") {
		t.Errorf("empty imageRef: %d %s", r.Status, r.Value)
	}
}

// TestUpdateAgentWired: with update_agent.enable the daemon runs the
// containers domain agent, which publishes the (retained) current state
// listing the daemon's containers.
func TestUpdateAgentWired(t *testing.T) {
	cmtest.Requirements(t)
	broker := mosquittotest.Start(t, mosquittotest.Options{})
	d := setup(t, "--ua-enable=true", "--conn-broker-url", broker.URL())
	cli(t, d, "create", "-n", "inventoried", testImage)
	ctx := context.Background()
	peer := mqtt.New(mqtt.Options{URL: broker.URL(), ClientID: "ua-peer", CleanSession: true})
	if err := peer.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(peer.Close)
	states := &recorder{}
	if err := peer.Subscribe(ctx, "containersupdate/currentstate", 1, states.handle); err != nil {
		t.Fatal(err)
	}
	if err := peer.Publish(ctx, mqtt.Message{Topic: "containersupdate/currentstate/get", QoS: 1, Payload: []byte(`{"activityId":"a1","timestamp":1}`)}); err != nil {
		t.Fatal(err)
	}
	cmtest.WaitFor(t, 60*time.Second, "current state with the container", func() bool {
		states.mu.Lock()
		defer states.mu.Unlock()
		for _, m := range states.msgs {
			if strings.Contains(string(m.Payload), "containers:inventoried") {
				return true
			}
		}
		return false
	})
}
