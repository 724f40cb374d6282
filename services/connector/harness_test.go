package connector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/internal/cloudpeer"
	"github.com/kantofw/kanto/services/internal/kantotest"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// kanto is the real binary (KANTO_BIN, or built once from this tree).
func kanto(t testing.TB) string { return kantotest.Bin(t) }

const (
	tenant   = "T"
	deviceID = "ns:gw"
	authID   = "gw-auth"
	password = "s3cret"
)

// world is a device (local broker + connector) and a cloud (hub broker,
// Hono adapter front, northbound back end).
type world struct {
	t       testing.TB
	dir     string
	local   *mosquittotest.Broker
	hub     *mosquittotest.Broker
	adapter *cloudpeer.Adapter
	nb      *cloudpeer.Northbound
	app     *mqtt.Client // a local app
	status  *recorder

	settings map[string]any
	env      []string
	proc     *exec.Cmd
	logBuf   *syncBuffer
	exited   chan struct{}
}

type worldOptions struct {
	hubExtra string
}

func newWorld(t testing.TB, o worldOptions) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir()}
	w.local = mosquittotest.Start(t, mosquittotest.Options{SysLog: true,
		Extra: "max_queued_messages 200000\nmax_inflight_messages 100\n"})
	// The back end must not be the bottleneck that drops messages.
	w.hub = mosquittotest.Start(t, mosquittotest.Options{SysLog: true,
		Extra: "max_queued_messages 1000000\nmax_inflight_messages 1000\n" + o.hubExtra})
	var err error
	w.adapter, err = cloudpeer.NewAdapter(w.hub.Addr(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.adapter.Close() })
	w.adapter.AddCredential(cloudpeer.Credential{Tenant: tenant, AuthID: authID, Password: password})
	w.nb, err = cloudpeer.NewNorthbound(ctxT(t), w.hub.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.nb.Close)
	w.app = mqtt.New(mqtt.Options{URL: w.local.URL(), ClientID: "app", AutoReconnect: true, MaxReconnectInterval: 200 * time.Millisecond})
	if err := w.app.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.app.Close)
	w.status = w.record(connectorStatus)
	w.settings = map[string]any{
		"address":          "tcp://" + w.adapter.Addr(),
		"deviceId":         deviceID,
		"tenantId":         tenant,
		"authId":           authID,
		"password":         password,
		"clientId":         "gw-hub",
		"localAddress":     w.local.URL(),
		"provisioningFile": filepath.Join(w.dir, "provisioning.json"),
		"bufferFile":       filepath.Join(w.dir, "buffer.db"),
		"logFile":          "",
		"logLevel":         "DEBUG",
	}
	w.env = []string{"HUB_CONNECT_INIT=0.2", "HUB_CONNECT_MAX=0.5", "HUB_CONNECT_MUL=1.5"}
	return w
}

const connectorStatus = "edge/connection/remote/status"

// start runs the kanto binary as suite-connector with the world's settings.
func (w *world) start() {
	w.t.Helper()
	cfg := filepath.Join(w.dir, "config.json")
	data, _ := json.MarshalIndent(w.settings, "", "  ")
	if err := os.WriteFile(cfg, data, 0o644); err != nil {
		w.t.Fatal(err)
	}
	link := filepath.Join(w.dir, "suite-connector")
	_ = os.Symlink(kanto(w.t), link)
	cmd := exec.Command(link, "-configFile", cfg)
	cmd.Env = append(os.Environ(), w.env...)
	if w.logBuf == nil {
		w.logBuf = &syncBuffer{}
	}
	cmd.Stdout, cmd.Stderr = w.logBuf, w.logBuf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.proc = cmd
	w.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { _ = c.Wait(); close(done) }(cmd, w.exited)
	w.t.Cleanup(func() {
		w.stop(syscall.SIGTERM)
		if w.t.Failed() {
			w.t.Logf("connector log:\n%s", w.logBuf.String())
		}
	})
}

func (w *world) stop(sig syscall.Signal) {
	if w.proc == nil {
		return
	}
	_ = w.proc.Process.Signal(sig)
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		_ = w.proc.Process.Kill()
		<-w.exited
	}
	w.proc = nil
}

// alive reports whether the connector process still runs.
func (w *world) alive() bool {
	select {
	case <-w.exited:
		return false
	default:
		return true
	}
}

func (w *world) publish(topic string, payload []byte, qos byte) {
	w.t.Helper()
	if err := w.app.Publish(ctxT(w.t), mqtt.Message{Topic: topic, Payload: payload, QoS: qos}); err != nil {
		w.t.Fatalf("publish %s: %v", topic, err)
	}
}

// recorder keeps every message on a local filter.
type recorder struct {
	mu      sync.Mutex
	msgs    []mqtt.Message
	changed chan struct{}
}

func (w *world) record(filter string) *recorder {
	w.t.Helper()
	r := &recorder{changed: make(chan struct{})}
	err := w.app.Subscribe(ctxT(w.t), filter, 1, func(_ context.Context, m mqtt.Message) {
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

func (r *recorder) all() []mqtt.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]mqtt.Message(nil), r.msgs...)
}

// await waits until pred holds for the messages recorded so far.
func (r *recorder) await(t testing.TB, what string, pred func([]mqtt.Message) bool) []mqtt.Message {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		ch := r.changed
		msgs := append([]mqtt.Message(nil), r.msgs...)
		r.mu.Unlock()
		if pred(msgs) {
			return msgs
		}
		select {
		case <-ch:
		case <-deadline:
			var got []string
			for _, m := range msgs {
				got = append(got, m.Topic+" "+string(m.Payload))
			}
			t.Fatalf("timed out waiting for %s; got:\n%s", what, strings.Join(got, "\n"))
		}
	}
}

type statusMsg struct {
	Connected bool   `json:"connected"`
	Timestamp int64  `json:"timestamp"`
	Cause     string `json:"cause"`
}

func causes(msgs []mqtt.Message) []string {
	var out []string
	for _, m := range msgs {
		var s statusMsg
		if json.Unmarshal(m.Payload, &s) == nil {
			if s.Connected {
				out = append(out, "connected")
			} else {
				out = append(out, s.Cause)
			}
		}
	}
	return out
}

// awaitCause waits until a status with cause (or "connected") arrives at
// or after index from; it returns the index after it.
func (w *world) awaitCause(from int, cause string) int {
	w.t.Helper()
	var idx int
	w.status.await(w.t, "status "+cause, func(msgs []mqtt.Message) bool {
		cs := causes(msgs)
		for i := from; i < len(cs); i++ {
			if cs[i] == cause {
				idx = i + 1
				return true
			}
		}
		return false
	})
	return idx
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
