package updateagent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/store"
	"github.com/kantofw/kanto/services/internal/updateapi"
)

// InitialCurrentStatePrefix starts the activity ID of the current state an
// agent publishes on every connect (UM:mqtt/update_agent_client.go).
const InitialCurrentStatePrefix = "initial-current-state-"

var opKey = []byte("operation")

// Migrations is the agent database's schema.
var Migrations = []store.Migration{{Name: "root bucket", Up: func(*bolt.Tx) error { return nil }}}

// Options configure an agent.
type Options struct {
	Domain string // e.g. "containers"
	MQTT   mqtt.Options
	// DB persists the operation; nil keeps it in memory only.
	DB  *store.DB
	Log *slog.Logger
	Now func() time.Time
}

// Agent connects one Domain to the update manager.
type Agent struct {
	o      Options
	d      Domain
	prefix string
	log    *slog.Logger
	client *mqtt.Client
	jobs   chan job

	mu   sync.Mutex
	op   *Operation // owned by the Run goroutine
	last []byte     // last feedback payload published, guarded by mu

	// Owned by the Run goroutine: the last finished activity and its final
	// feedback, re-sent when the manager repeats a command after a restart.
	doneActivity string
	doneFeedback []byte
}

type job struct {
	kind string // "desired", "command", "resume"
	env  *updateapi.Envelope
}

// New returns an agent for d; Run connects it.
func New(o Options, d Domain) *Agent {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &Agent{o: o, d: d, prefix: updateapi.TopicPrefix(o.Domain), log: o.Log.With("domain", o.Domain), jobs: make(chan job, 64)}
	mo := o.MQTT
	user := mo.OnConnect
	mo.OnConnect = func() {
		// paho runs this on its own goroutine; publishing from it is fine.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		a.publishCurrentState(ctx, InitialCurrentStatePrefix+strconv.FormatInt(a.o.Now().UnixMilli(), 10))
		if user != nil {
			user()
		}
	}
	if mo.Log == nil {
		mo.Log = o.Log
	}
	a.client = mqtt.New(mo)
	return a
}

// Run subscribes, connects (retrying until ctx ends), resumes a persisted
// operation and then serves until ctx ends. Cancellation returns nil.
func (a *Agent) Run(ctx context.Context) error {
	defer a.client.Close()
	subs := map[string]func(*updateapi.Envelope){
		a.prefix + updateapi.SuffixDesiredState:        func(e *updateapi.Envelope) { a.enqueue(ctx, job{kind: "desired", env: e}) },
		a.prefix + updateapi.SuffixDesiredStateCommand: func(e *updateapi.Envelope) { a.enqueue(ctx, job{kind: "command", env: e}) },
		a.prefix + updateapi.SuffixCurrentStateGet:     func(e *updateapi.Envelope) { a.publishCurrentState(ctx, e.ActivityID) },
	}
	for topic, h := range subs {
		err := a.client.Subscribe(ctx, topic, 1, func(_ context.Context, m mqtt.Message) {
			env, err := updateapi.ParseEnvelope(m.Payload)
			if err != nil {
				a.log.Warn("dropping message", "topic", m.Topic, "err", err)
				if m.Topic == a.prefix+updateapi.SuffixDesiredState {
					// Say why nothing happens, under whatever ID we can read.
					a.publishRaw(ctx, updateapi.PeekActivityID(m.Payload), updateapi.Feedback{Status: updateapi.StatusIdentificationFailed, Message: err.Error()})
				}
				return
			}
			h(env)
		})
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", topic, err)
		}
	}
	op, err := a.load()
	if err != nil {
		return err
	}
	a.op = op
	if err := connectLoop(ctx, a.client, a.log); err != nil {
		return nil
	}
	if a.op != nil {
		a.jobs <- job{kind: "resume"}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case j := <-a.jobs:
			a.handle(ctx, j)
		}
	}
}

// connectLoop retries the first connect until it succeeds or ctx ends;
// paho reconnects by itself afterwards.
func connectLoop(ctx context.Context, c *mqtt.Client, log *slog.Logger) error {
	delay := 100 * time.Millisecond
	for {
		err := c.Connect(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("broker connect failed, retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

func (a *Agent) enqueue(ctx context.Context, j job) {
	select {
	case a.jobs <- j:
	case <-ctx.Done():
	}
}

// Client is the agent's MQTT connection, for domains that publish more.
func (a *Agent) Client() *mqtt.Client { return a.client }

// PublishCurrentState sends an unsolicited current state (empty activity
// ID), e.g. after the domain changed outside an update.
func (a *Agent) PublishCurrentState(ctx context.Context) { a.publishCurrentState(ctx, "") }

func (a *Agent) publishCurrentState(ctx context.Context, activityID string) {
	inv, err := a.d.CurrentState(ctx)
	if err != nil {
		a.log.Warn("current state unavailable", "err", err)
		return
	}
	b, err := updateapi.NewEnvelope(activityID, a.o.Now(), inv)
	if err != nil {
		a.log.Error("encode current state", "err", err)
		return
	}
	if err := a.client.Publish(ctx, mqtt.Message{Topic: a.prefix + updateapi.SuffixCurrentState, QoS: 1, Retained: true, Payload: b}); err != nil {
		a.log.Warn("publish current state", "err", err)
	}
}

func (a *Agent) handle(ctx context.Context, j job) {
	switch j.kind {
	case "resume":
		a.resume(ctx)
	case "desired":
		a.onDesiredState(ctx, j.env)
	case "command":
		a.onCommand(ctx, j.env)
	}
}

func (a *Agent) resume(ctx context.Context) {
	op := a.op
	op.agent = a
	if op.Status == updateapi.StatusIdentifying {
		a.identify(ctx, op)
		return
	}
	if cmd, ok := inProgress(op.Status); ok {
		a.log.Info("resuming phase", "activityId", op.ActivityID, "command", cmd)
		a.run(ctx, op, cmd)
		return
	}
	a.resend(ctx)
}

func (a *Agent) onDesiredState(ctx context.Context, env *updateapi.Envelope) {
	if a.op != nil && a.op.ActivityID == env.ActivityID {
		a.resend(ctx) // the update manager asks again after its restart
		return
	}
	ds, err := updateapi.ParseDesiredState(env.Payload)
	if err == nil && (len(ds.Domains) != 1 || ds.Domains[0].ID != a.o.Domain) {
		err = fmt.Errorf("the desired state does not contain exactly the domain %q: %w", a.o.Domain, updateapi.ErrInvalid)
	}
	if err != nil {
		a.publishRaw(ctx, env.ActivityID, updateapi.Feedback{Status: updateapi.StatusIdentificationFailed, Message: err.Error()})
		return
	}
	if a.op != nil {
		a.log.Warn("new activity replaces the unfinished one", "old", a.op.ActivityID, "new", env.ActivityID)
	}
	op := &Operation{ActivityID: env.ActivityID, Desired: ds, Status: updateapi.StatusIdentifying, agent: a}
	a.op = op
	a.identify(ctx, op)
}

func (a *Agent) identify(ctx context.Context, op *Operation) {
	a.persistAndPublish(ctx, op)
	op.Actions = nil
	if err := a.d.Identify(ctx, op); err != nil {
		if ctx.Err() != nil {
			return
		}
		op.Status, op.Message = updateapi.StatusIdentificationFailed, err.Error()
		a.publishFeedback(ctx, op)
		a.finish(op)
		return
	}
	op.Status, op.Message = updateapi.StatusIdentified, ""
	a.persistAndPublish(ctx, op)
	if len(op.Actions) == 0 {
		op.Status = updateapi.StatusCompleted
		a.publishFeedback(ctx, op)
		a.finish(op)
	}
}

func (a *Agent) onCommand(ctx context.Context, env *updateapi.Envelope) {
	op := a.op
	if op == nil && env.ActivityID != "" && env.ActivityID == a.doneActivity {
		a.publishBytes(ctx, a.doneFeedback)
		return
	}
	if op == nil || op.ActivityID != env.ActivityID {
		a.log.Info("ignoring command for an unknown activity", "activityId", env.ActivityID)
		return
	}
	c, err := updateapi.ParseCommand(env.Payload)
	if err != nil {
		a.log.Warn("ignoring command", "err", err)
		return
	}
	if c.Baseline != "" && c.Baseline != "*" {
		a.log.Info("command for a named baseline applies to all actions", "baseline", c.Baseline)
	}
	r := rules[c.Command]
	if c.Command == op.LastCommand {
		a.resend(ctx) // a repeat after the manager restarted
		return
	}
	if r.from != nil && !slices.Contains(r.from, op.Status) {
		op.Status = r.fail
		op.Message = fmt.Sprintf("%s is possible only after status %s is reported", c.Command, r.from[0])
		op.Failed = true
		a.persistAndPublish(ctx, op)
		return
	}
	a.run(ctx, op, c.Command)
}

// run executes one phase: running status, Execute, then success or failure.
func (a *Agent) run(ctx context.Context, op *Operation, cmd updateapi.CommandType) {
	r := rules[cmd]
	op.LastCommand = cmd
	op.Status, op.Message = r.running, ""
	if cmd != updateapi.CommandCleanup {
		a.persistAndPublish(ctx, op)
	} else if err := a.save(op); err != nil {
		a.log.Error("persist operation", "err", err)
	}
	err := a.d.Execute(ctx, cmd, op)
	if ctx.Err() != nil {
		return // stopping: resumed from the persisted running status
	}
	if err != nil {
		op.Status, op.Message, op.Failed = r.fail, err.Error(), true
	} else {
		op.Status = r.ok
	}
	a.persistAndPublish(ctx, op)
	if cmd == updateapi.CommandCleanup {
		op.Status, op.Message = updateapi.StatusCompleted, ""
		if op.Failed {
			op.Status = updateapi.StatusIncomplete
		}
		a.publishFeedback(ctx, op)
		a.finish(op)
		a.publishCurrentState(ctx, "")
	}
}

func (a *Agent) persistAndPublish(ctx context.Context, op *Operation) {
	if err := a.save(op); err != nil {
		a.log.Error("persist operation", "err", err)
	}
	a.publishFeedback(ctx, op)
}

// finish forgets the operation; its last feedback stays for re-sends.
func (a *Agent) finish(op *Operation) {
	if err := a.clear(); err != nil {
		a.log.Error("clear operation", "err", err)
	}
	if a.op == op {
		a.op = nil
	}
	a.mu.Lock()
	a.doneActivity, a.doneFeedback = op.ActivityID, a.last
	a.mu.Unlock()
}

func (a *Agent) publishFeedback(ctx context.Context, op *Operation) {
	a.publishRaw(ctx, op.ActivityID, updateapi.Feedback{Status: op.Status, Message: op.Message, Actions: slices.Clone(op.Actions)})
}

func (a *Agent) publishRaw(ctx context.Context, activityID string, f updateapi.Feedback) {
	b, err := updateapi.NewEnvelope(activityID, a.o.Now(), f)
	if err != nil {
		a.log.Error("encode feedback", "err", err)
		return
	}
	a.mu.Lock()
	a.last = b
	a.mu.Unlock()
	a.log.Debug("feedback", "activityId", activityID, "status", f.Status, "message", f.Message)
	a.publishBytes(ctx, b)
}

func (a *Agent) publishBytes(ctx context.Context, b []byte) {
	if err := a.client.Publish(ctx, mqtt.Message{Topic: a.prefix + updateapi.SuffixDesiredStateFeedback, QoS: 1, Payload: b}); err != nil {
		a.log.Warn("publish feedback", "err", err)
	}
}

// resend publishes the operation's current feedback again.
func (a *Agent) resend(ctx context.Context) {
	if a.op != nil {
		a.op.agent = a
		a.publishFeedback(ctx, a.op)
	}
}

func (a *Agent) save(op *Operation) error {
	if a.o.DB == nil {
		return nil
	}
	b, err := json.Marshal(op)
	if err != nil {
		return err
	}
	return a.o.DB.UpdateRoot(func(root *bolt.Bucket) error { return root.Put(opKey, b) })
}

func (a *Agent) clear() error {
	if a.o.DB == nil {
		return nil
	}
	return a.o.DB.UpdateRoot(func(root *bolt.Bucket) error { return root.Delete(opKey) })
}

func (a *Agent) load() (*Operation, error) {
	if a.o.DB == nil {
		return nil, nil
	}
	var op *Operation
	err := a.o.DB.ViewRoot(func(root *bolt.Bucket) error {
		raw := root.Get(opKey)
		if raw == nil {
			return nil
		}
		op = &Operation{}
		if err := json.Unmarshal(raw, op); err != nil {
			return fmt.Errorf("persisted operation: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if op != nil {
		op.agent = a
	}
	return op, nil
}
