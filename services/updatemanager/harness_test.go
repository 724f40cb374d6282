package updatemanager_test

import (
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

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/store"
	"github.com/kantofw/kanto/services/internal/updateagent"
	"github.com/kantofw/kanto/services/internal/updateagent/updateagenttest"
	"github.com/kantofw/kanto/services/internal/updateapi"
	"github.com/kantofw/kanto/services/updatemanager"
)

const waitFor = 30 * time.Second

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// observed is one message seen by the cloud-side observer.
type observed struct {
	Topic    string
	Env      updateapi.Envelope
	Feedback updateapi.Feedback
}

// observer plays the cloud (and the HMI): it watches every
// desiredstatefeedback, currentstate and ownerconsent topic.
type observer struct {
	t  testing.TB
	c  *mqtt.Client
	mu sync.Mutex
	ms []observed
	ch chan struct{}
}

func newObserver(t testing.TB, url string) *observer {
	o := &observer{t: t, ch: make(chan struct{}, 1)}
	o.c = mqtt.New(mqtt.Options{URL: url, ClientID: "observer-" + t.Name(), CleanSession: true, AutoReconnect: true})
	for _, f := range []string{"+/desiredstatefeedback", "+/currentstate", "+/ownerconsent", "+/desiredstate", "+/desiredstate/command"} {
		if err := o.c.Subscribe(ctxT(t), f, 1, o.add); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.c.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// Connect returns at CONNACK; the subscriptions go out just after.
	if err := o.c.WaitConnected(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.c.Close)
	return o
}

func (o *observer) add(_ context.Context, m mqtt.Message) {
	var ob observed
	ob.Topic = m.Topic
	if err := json.Unmarshal(m.Payload, &ob.Env); err != nil {
		return
	}
	if strings.HasSuffix(m.Topic, "/desiredstatefeedback") {
		_ = json.Unmarshal(ob.Env.Payload, &ob.Feedback)
	}
	o.mu.Lock()
	o.ms = append(o.ms, ob)
	o.mu.Unlock()
	select {
	case o.ch <- struct{}{}:
	default:
	}
}

// waitUntil returns once cond holds over the messages seen so far.
func (o *observer) waitUntil(what string, cond func([]observed) bool) []observed {
	o.t.Helper()
	deadline := time.After(waitFor)
	for {
		o.mu.Lock()
		ms := append([]observed(nil), o.ms...)
		o.mu.Unlock()
		if cond(ms) {
			return ms
		}
		select {
		case <-o.ch:
		case <-deadline:
			var b strings.Builder
			for _, m := range ms {
				fmt.Fprintf(&b, "  %s %s %s %s\n", m.Topic, m.Env.ActivityID, m.Feedback.Status, m.Feedback.Message)
			}
			o.t.Fatalf("timed out waiting for %s; seen:\n%s", what, b.String())
		}
	}
}

// statuses lists the feedback statuses on prefix/desiredstatefeedback for id.
func statuses(ms []observed, prefix, id string) []updateapi.Status {
	var out []updateapi.Status
	for _, m := range ms {
		if m.Topic == prefix+"/desiredstatefeedback" && m.Env.ActivityID == id {
			out = append(out, m.Feedback.Status)
		}
	}
	return out
}

func last(ms []observed, prefix, id string) *observed {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Topic == prefix+"/desiredstatefeedback" && ms[i].Env.ActivityID == id {
			return &ms[i]
		}
	}
	return nil
}

func isFinal(s updateapi.Status) bool {
	switch s {
	case updateapi.StatusCompleted, updateapi.StatusIncomplete, updateapi.StatusIdentificationFailed:
		return true
	}
	return false
}

// waitFinal waits for the manager's final feedback of id.
func (o *observer) waitFinal(id string) observed {
	o.t.Helper()
	ms := o.waitUntil("final feedback of "+id, func(ms []observed) bool {
		l := last(ms, "deviceupdate", id)
		return l != nil && isFinal(l.Feedback.Status)
	})
	return *last(ms, "deviceupdate", id)
}

func (o *observer) waitAgentStatus(domain, id string, st updateapi.Status) {
	o.t.Helper()
	o.waitUntil(fmt.Sprintf("%s %s from %s", id, st, domain), func(ms []observed) bool {
		for _, s := range statuses(ms, updateapi.TopicPrefix(domain), id) {
			if s == st {
				return true
			}
		}
		return false
	})
}

func (o *observer) publish(topic, id string, payload any) {
	o.t.Helper()
	b, err := updateapi.NewEnvelope(id, time.Now(), payload)
	if err != nil {
		o.t.Fatal(err)
	}
	o.publishRaw(topic, b)
}

func (o *observer) publishRaw(topic string, b []byte) {
	o.t.Helper()
	if err := o.c.Publish(ctxT(o.t), mqtt.Message{Topic: topic, QoS: 1, Payload: b}); err != nil {
		o.t.Fatal(err)
	}
}

// startAgent runs a test domain agent in this process until the test ends.
func startAgent(t testing.TB, url, dir string, d *updateagenttest.Domain) {
	t.Helper()
	db, err := store.Open(filepath.Join(dir, d.Name+"-agent.db"), "update-agent", updateagent.Migrations)
	if err != nil {
		t.Fatal(err)
	}
	a := updateagent.New(updateagent.Options{Domain: d.Name, DB: db, Log: logging.Discard(),
		MQTT: mqtt.Options{URL: url, ClientID: "agent-" + d.Name + "-" + t.Name(), CleanSession: true, AutoReconnect: true, MaxReconnectInterval: 100 * time.Millisecond}}, d)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent %s: %v", d.Name, err)
		}
		db.Close()
	})
}

type fakeReboot struct {
	mu sync.Mutex
	n  int
}

func (f *fakeReboot) Reboot(context.Context) error {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
	return nil
}

func (f *fakeReboot) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func baseConfig(url, dir string, domains ...string) updatemanager.Config {
	cfg := updatemanager.Defaults()
	cfg.ThingsEnabled = false
	cfg.Connection.Broker = url
	cfg.Database = filepath.Join(dir, "um.db")
	cfg.Agents = map[string]*updatemanager.AgentConfig{}
	for _, d := range domains {
		cfg.Agents[d] = &updatemanager.AgentConfig{ReadTimeout: updatemanager.Duration(5 * time.Second)}
	}
	cfg.RebootAfter = 0
	return cfg
}

// startManager runs the manager in this process and waits until it
// published its initial current state (it is then subscribed).
func startManager(t testing.TB, o *observer, cfg updatemanager.Config, rb updatemanager.Rebooter) {
	t.Helper()
	s, err := updatemanager.New(cfg, updatemanager.ServiceDeps{Log: logging.Discard(), Reboot: rb})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	waitManagerReady(o, o.count())
}

// count is the number of messages seen so far.
func (o *observer) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.ms)
}

func waitManagerReady(o *observer, from int) {
	o.t.Helper()
	o.waitUntil("manager's initial current state", func(ms []observed) bool {
		for _, m := range ms[from:] {
			if m.Topic == "deviceupdate/currentstate" && strings.HasPrefix(m.Env.ActivityID, "initial-current-state-") {
				return true
			}
		}
		return false
	})
}

func desired(domains map[string]map[string]string) updateapi.DesiredState {
	var ds updateapi.DesiredState
	for _, d := range sortedKeys(domains) {
		dom := updateapi.Domain{ID: d}
		for _, c := range sortedKeys(domains[d]) {
			dom.Components = append(dom.Components, updateapi.Component{ID: c, Version: domains[d][c]})
		}
		ds.Domains = append(ds.Domains, dom)
	}
	return ds
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// child re-executes the test binary running only the named helper test.
type child struct {
	cmd *exec.Cmd
}

func startChild(t testing.TB, helper string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.v")
	cmd.Env = append(os.Environ(), append(env, "UM_TEST_CHILD=1")...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd}
	t.Cleanup(c.kill)
	return c
}

func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

func mosquitto(t testing.TB) *mosquittotest.Broker {
	return mosquittotest.Start(t, mosquittotest.Options{})
}

type updatemanagerConfig = updatemanager.Config

func newService(cfg updatemanager.Config, rb updatemanager.Rebooter) (*updatemanager.Service, error) {
	return updatemanager.New(cfg, updatemanager.ServiceDeps{Log: logging.Discard(), Reboot: rb})
}
