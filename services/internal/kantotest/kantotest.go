// Package kantotest runs the real kanto binary for end-to-end tests of the
// services: built once per test binary (with -race when the test is), or
// taken from KANTO_BIN; started under a symlink named after the service with
// a JSON config; stopped with a signal or killed (kill -9). It also records
// what an MQTT client receives, to wait for it without timed assertions.
package kantotest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kantofw/kanto/services/internal/mqtt"
)

var (
	buildOnce sync.Once
	kantoBin  string
	buildErr  error
)

// Bin returns the kanto binary: KANTO_BIN, or one built from this tree.
func Bin(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if bin := os.Getenv("KANTO_BIN"); bin != "" {
			kantoBin = bin
			return
		}
		dir, err := os.MkdirTemp("", "kanto-bin")
		if err != nil {
			buildErr = err
			return
		}
		kantoBin = filepath.Join(dir, "kanto")
		args := []string{"build", "-o", kantoBin}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/kantofw/kanto/services/cmd/kanto")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build kanto: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return kantoBin
}

// Proc is one run of a service.
type Proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	exited chan struct{}
	Log    *SyncBuffer
}

// Start writes settings to dir/config.json and runs the binary as name
// (through a symlink) with -configFile. env is added to the environment.
// The process is stopped when the test ends, and its log shown on failure.
func Start(t testing.TB, dir, name string, settings map[string]any, env []string) *Proc {
	t.Helper()
	cfg := filepath.Join(dir, "config.json")
	data, _ := json.MarshalIndent(settings, "", "  ")
	if err := os.WriteFile(cfg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, name)
	_ = os.Symlink(Bin(t), link)
	cmd := exec.Command(link, "-configFile", cfg)
	cmd.Env = append(os.Environ(), env...)
	p := &Proc{t: t, cmd: cmd, exited: make(chan struct{}), Log: &SyncBuffer{}}
	cmd.Stdout, cmd.Stderr = p.Log, p.Log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Owned by the Proc; ends when the process exits.
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.Stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.Log.String())
		}
	})
	return p
}

// Stop sends sig and waits for the exit (SIGKILL after 10 s).
func (p *Proc) Stop(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Wait waits for the process to exit by itself and returns its exit code.
func (p *Proc) Wait(ctx context.Context) (int, error) {
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// Recorder keeps every message a client receives on a filter.
type Recorder struct {
	mu      sync.Mutex
	msgs    []mqtt.Message
	changed chan struct{}
}

// Record subscribes c to filter (QoS 1) and records what arrives.
func Record(t testing.TB, c *mqtt.Client, filter string) *Recorder {
	t.Helper()
	r := &Recorder{changed: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Subscribe(ctx, filter, 1, func(_ context.Context, m mqtt.Message) { r.Add(m) }); err != nil {
		t.Fatal(err)
	}
	return r
}

// Add records m.
func (r *Recorder) Add(m mqtt.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// All returns what was recorded so far.
func (r *Recorder) All() []mqtt.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]mqtt.Message(nil), r.msgs...)
}

// Await waits (up to a minute) until pred holds for the recorded messages.
func (r *Recorder) Await(t testing.TB, what string, pred func([]mqtt.Message) bool) []mqtt.Message {
	t.Helper()
	deadline := time.After(time.Minute)
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

// AwaitTopic waits for a message on topic whose payload satisfies pred
// (nil: any), after the first skip messages; it returns it and its index.
func (r *Recorder) AwaitTopic(t testing.TB, skip int, topic string, pred func([]byte) bool) (mqtt.Message, int) {
	t.Helper()
	var got mqtt.Message
	idx := -1
	r.Await(t, "a message on "+topic, func(ms []mqtt.Message) bool {
		for i := skip; i < len(ms); i++ {
			if mqtt.Match(topic, ms[i].Topic) && (pred == nil || pred(ms[i].Payload)) {
				got, idx = ms[i], i
				return true
			}
		}
		return false
	})
	return got, idx
}

// StatusIs matches an edge/connection/remote/status payload with the given
// cause ("" or "connected" for connected).
func StatusIs(cause string) func([]byte) bool {
	return func(p []byte) bool {
		var s struct {
			Connected bool   `json:"connected"`
			Cause     string `json:"cause"`
		}
		if json.Unmarshal(p, &s) != nil {
			return false
		}
		if cause == "" || cause == "connected" {
			return s.Connected
		}
		return !s.Connected && s.Cause == cause
	}
}

// SyncBuffer is a goroutine-safe log buffer.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Retained returns the retained message on topic, as a local app that
// connects now gets it; the test fails if the broker at url holds none
// before ctx ends.
func Retained(ctx context.Context, t testing.TB, url, topic string) mqtt.Message {
	t.Helper()
	c := mqtt.New(mqtt.Options{URL: url, ClientID: "late-app", CleanSession: true})
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan mqtt.Message, 1)
	err := c.Subscribe(ctx, topic, 1, func(_ context.Context, m mqtt.Message) {
		select {
		case got <- m:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		return m
	case <-ctx.Done():
		t.Fatalf("no retained message on %s", topic)
		return mqtt.Message{}
	}
}

// CheckTraceT checks the log of a connector run with TRACE_TOPIC_PREFIX=t
// and MQTT_LOG_LEVEL=DEBUG after a local app published an event on e and
// then {"traced":1} on t: the telemetry is traced, the event is not, and
// the MQTT library's own lines are there (reference §1.5.2).
func CheckTraceT(t testing.TB, log, service string) {
	t.Helper()
	if !strings.Contains(log, `topic=t payload="{\"traced\":1}"`) {
		t.Errorf("no trace line for the telemetry:\n%s", log)
	}
	if strings.Contains(log, "msg=trace service="+service+" topic=e ") {
		t.Error("an event was traced; only t was asked for")
	}
	if !strings.Contains(log, "component=paho") {
		t.Error("no MQTT library log lines")
	}
}
