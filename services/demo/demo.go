// Package demo runs the stack's main job end to end on this machine and
// prints a readable timeline. Campaign (the default of make demo) boots the
// firmware image in QEMU and updates it from the cloud through the update
// manager: a good A/B update that commits and a bad one that GRUB rolls
// back. Run (kanto-demo -connectivity) shows the connectivity alone: a
// device (local Mosquitto + our connector) linked to a cloud (Mosquitto
// behind our Hono adapter simulator), telemetry from a local app, a command
// round trip, and a cloud outage during which nothing is lost.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kantofw/kanto/internal/mosquitto"
	"github.com/kantofw/kanto/services/internal/cloudpeer"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// Options of a demo run.
type Options struct {
	Kanto    string // path of the kanto binary
	Out      io.Writer
	Messages int           // telemetry messages published during the outage run
	Outage   time.Duration // how long the cloud is away
}

// timeline prints lines stamped with the time since the start; it is safe
// for concurrent use.
type timeline struct {
	w     io.Writer
	start time.Time
	mu    sync.Mutex
}

func (t *timeline) say(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "[%6.2fs] %s\n", time.Since(t.start).Seconds(), fmt.Sprintf(format, args...))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Run runs the demo; it returns an error if anything the demo shows did not
// happen (a lost message, no command response).
func Run(ctx context.Context, o Options) error {
	tl := &timeline{w: o.Out, start: time.Now()}
	dir, err := os.MkdirTemp("", "kanto-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	startBroker := func(name string, opts mosquitto.Options) (*mosquitto.Broker, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		return mosquitto.Start(d, port, opts)
	}
	local, err := startBroker("device-broker", mosquitto.Options{SysLog: true, Persistence: true,
		Extra: "max_queued_messages 100000\n"})
	if err != nil {
		return err
	}
	defer local.Stop()
	tl.say("device: local Mosquitto on %s", local.Addr())
	hub, err := startBroker("cloud-broker", mosquitto.Options{SysLog: true, Extra: "max_queued_messages 1000000\n"})
	if err != nil {
		return err
	}
	defer hub.Stop()
	adapter, err := cloudpeer.NewAdapter(hub.Addr(), nil, nil)
	if err != nil {
		return err
	}
	defer adapter.Close()
	adapter.AddCredential(cloudpeer.Credential{Tenant: "demo-tenant", AuthID: "gw", Password: "demo-secret"})
	tl.say("cloud: Hono adapter simulator on %s in front of Mosquitto on %s", adapter.Addr(), hub.Addr())
	nb, err := cloudpeer.NewNorthbound(ctx, hub.URL())
	if err != nil {
		return err
	}
	defer nb.Close()

	cfg := map[string]any{
		"address": "tcp://" + adapter.Addr(), "deviceId": "demo:gateway", "tenantId": "demo-tenant",
		"authId": "gw", "password": "demo-secret", "localAddress": local.URL(),
		"provisioningFile": filepath.Join(dir, "provisioning.json"),
		"bufferFile":       filepath.Join(dir, "buffer.db"),
		"logFile":          filepath.Join(dir, "suite-connector.log"),
	}
	data, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "suite-connector.json")
	if err := os.WriteFile(cfgFile, data, 0o644); err != nil {
		return err
	}
	link := filepath.Join(dir, "suite-connector")
	if err := os.Symlink(o.Kanto, link); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, link, "-configFile", cfgFile)
	cmd.Env = append(os.Environ(), "HUB_CONNECT_INIT=0.5", "HUB_CONNECT_MAX=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	tl.say("device: suite-connector started (pid %d), the symlink to kanto", cmd.Process.Pid)

	app := mqtt.New(mqtt.Options{URL: local.URL(), ClientID: "demo-app", AutoReconnect: true})
	if err := app.Connect(ctx); err != nil {
		return err
	}
	defer app.Close()
	statuses := make(chan string, 64)
	_ = app.Subscribe(ctx, "edge/connection/remote/status", 1, func(_ context.Context, m mqtt.Message) {
		tl.say("device: edge/connection/remote/status %s", m.Payload)
		select {
		case statuses <- string(m.Payload):
		default:
		}
	})
	waitStatus := func(want string) error {
		for {
			select {
			case s := <-statuses:
				if strings.Contains(s, want) {
					return nil
				}
			case <-time.After(30 * time.Second):
				return fmt.Errorf("no status %s within 30s", want)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if err := waitStatus(`"connected":true`); err != nil {
		return err
	}

	// A local app answers commands the way Kanto apps do.
	_ = app.Subscribe(ctx, "command//demo:gateway/req/#", 1, func(_ context.Context, m mqtt.Message) {
		parts := strings.SplitN(m.Topic, "/", 6)
		tl.say("device: app got command %s", m.Topic)
		reply := strings.Replace(string(m.Payload), "/inbox/", "/outbox/", 1)
		reply = strings.Replace(reply, `"value":"ping"`, `"value":"pong","status":200`, 1)
		app.PublishAsync(mqtt.Message{Topic: "command//demo:gateway/res/" + parts[4] + "/200", Payload: []byte(reply), QoS: 1})
	})
	time.Sleep(300 * time.Millisecond)
	status, body, err := nb.Command(ctx, "demo:gateway", "ping",
		[]byte(`{"topic":"demo/gateway/things/live/messages/ping","headers":{"correlation-id":"demo-1","response-required":true},"path":"/inbox/messages/ping","value":"ping"}`))
	if err != nil {
		return err
	}
	tl.say("cloud: command response %s %s", status, body)

	tl.say("device: app publishes %d QoS 1 telemetry messages; the cloud goes away for %v in the middle", o.Messages, o.Outage)
	for i := range o.Messages {
		if i == o.Messages/3 {
			adapter.Cut()
			tl.say("cloud: OUTAGE (all device connections dropped, new ones refused)")
			go func() {
				time.Sleep(o.Outage)
				adapter.Restore()
				tl.say("cloud: back")
			}()
		}
		p, _ := json.Marshal(map[string]any{"topic": "demo/gateway/things/twin/commands/modify",
			"path": "/features/meter/properties/value", "value": i})
		if err := app.Publish(ctx, mqtt.Message{Topic: "t", Payload: p, QoS: 1}); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
	got, err := nb.Await(ctx, "telemetry/demo-tenant/demo:gateway", o.Messages)
	if err != nil {
		return err
	}
	seen := map[int]bool{}
	inOrder := true
	last := -1
	for _, m := range got {
		var v struct{ Value int }
		_ = json.Unmarshal(m.Payload, &v)
		if !seen[v.Value] && v.Value < last {
			inOrder = false
		}
		if !seen[v.Value] {
			last = v.Value
		}
		seen[v.Value] = true
	}
	lost := 0
	for i := range o.Messages {
		if !seen[i] {
			lost++
		}
	}
	tl.say("cloud: received %d telemetry messages on telemetry/demo-tenant/demo:gateway: %d distinct, %d lost, in order: %v",
		len(got), len(seen), lost, inOrder)
	if lost > 0 || !inOrder {
		return fmt.Errorf("%d messages lost, in order %v", lost, inOrder)
	}
	time.Sleep(200 * time.Millisecond)
	tl.say("done: nothing lost across the outage")
	return nil
}
