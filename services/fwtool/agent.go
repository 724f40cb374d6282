package fwtool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kantofw/kanto/board"
	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/firmware/install"
	"github.com/kantofw/kanto/firmware/slot"
	"github.com/kantofw/kanto/ota"
	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/lifecycle"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// Local MQTT API of the firmware agent (`kanto fw agent`), under the topic
// prefix (default "kanto/fw"):
//
//	<prefix>/status            retained JSON ota.Status, republished after every change
//	<prefix>/progress          JSON install.Progress while a bundle is written
//	<prefix>/request/<op>      op: install | commit | rollback | reboot | status
//	                           payload {"correlationId": "...", "source": "<url or path>"}
//	<prefix>/response/<op>     {"correlationId": "...", "ok": bool, "error": "...", "update": Record}
//
// Requests run one at a time in arrival order; install answers when the
// bundle is installed (or failed).
const DefaultTopicPrefix = "kanto/fw"

// TopicCloudStatus is the connector's retained connection status, used by
// the cloud-connected health check.
const TopicCloudStatus = "edge/connection/remote/status"

type request struct {
	CorrelationID string `json:"correlationId,omitempty"`
	Source        string `json:"source,omitempty"`
}

type response struct {
	CorrelationID string     `json:"correlationId,omitempty"`
	OK            bool       `json:"ok"`
	Error         string     `json:"error,omitempty"`
	Update        ota.Record `json:"update"`
}

// cloudWatch follows the connector's status topic; it implements
// ota.CloudStatus.
type cloudWatch struct{ up atomic.Bool }

func (c *cloudWatch) Connected() bool { return c.up.Load() }

func daemonMain(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, "fw agent")
	var f agentFlags
	f.register(fs, "resume")
	keyring := fs.String("keyring", DefaultKeyring, "keyring PEM bundles must be signed for")
	broker := fs.String("broker", "tcp://127.0.0.1:1883", "local MQTT broker (empty: no MQTT API)")
	prefix := fs.String("topic-prefix", DefaultTopicPrefix, "topic prefix of the local API")
	cloudWithin := fs.Duration("cloud-within", 0, "health check: connected to the cloud within this time (0: no check)")
	skip := fs.Bool("skip-identical", false, "skip writing 1 MiB frames the slot already holds (less flash wear)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return cli.Usagef("fw agent takes no arguments")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.level)); err != nil {
		return cli.Usagef("--log-level %q", f.level)
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level})).With("service", "fw-agent")
	slots, err := slot.Load(f.slots)
	if err != nil {
		return err
	}
	kr, err := bundle.LoadKeyring(*keyring)
	if err != nil {
		return err
	}
	checks, err := healthChecks(f)
	if err != nil {
		return err
	}
	cloud := &cloudWatch{}
	if *cloudWithin > 0 {
		checks = append(checks, ota.CloudConnected(cloud, *cloudWithin))
	}
	d := &daemon{log: log, prefix: strings.TrimSuffix(*prefix, "/")}
	cfg := ota.Config{DBPath: f.db, Slots: slots, Keyring: kr, AutoReboot: f.reboot, HealthTimeout: f.healthTimeout, SkipIdentical: *skip}
	if cfg.DBPath == "" {
		cfg.DBPath = filepath.Join(slots.StateDir, "ota.db")
	}
	httpOpts, err := f.httpOptions()
	if err != nil {
		return err
	}
	a, err := ota.New(cfg, ota.Deps{Log: log, Rebooter: &board.Hooks{Dir: f.hooks, Log: log}, Checks: checks, Progress: d.progress, BootID: f.bootID, HTTP: httpOpts})
	if err != nil {
		return err
	}
	defer a.Close()
	d.agent = a
	return d.run(ctx, *broker, cloud)
}

// daemon is the long-running agent with its MQTT API.
type daemon struct {
	agent  *ota.Agent
	client *mqtt.Client
	prefix string
	log    *slog.Logger
	// queue feeds the request worker; the worker goroutine is owned by run
	// and ends when ctx ends.
	queue    chan mqtt.Message
	lastProg atomic.Int64
}

func (d *daemon) run(ctx context.Context, broker string, cloud *cloudWatch) error {
	n := lifecycle.NewNotifier(d.log)
	var wg sync.WaitGroup
	defer wg.Wait()
	if broker != "" {
		d.client = mqtt.New(mqtt.Options{URL: broker, ClientID: "kanto-fw-agent", AutoReconnect: true, Log: d.log,
			OnConnect: func() { go d.publishStatus(ctx) }})
		defer d.client.Close()
		err := d.client.Subscribe(ctx, TopicCloudStatus, 1, func(_ context.Context, m mqtt.Message) {
			var st struct {
				Connected bool `json:"connected"`
			}
			if json.Unmarshal(m.Payload, &st) == nil {
				cloud.up.Store(st.Connected)
			}
		})
		if err != nil {
			return err
		}
		d.queue = make(chan mqtt.Message, 16)
		if err := d.client.Subscribe(ctx, d.prefix+"/request/+", 1, func(ctx context.Context, m mqtt.Message) {
			select {
			case d.queue <- m:
			case <-ctx.Done():
			}
		}); err != nil {
			return err
		}
		// Connect in the background: the verification below must not wait
		// for the broker (the cloud check has its own time limit).
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.client.Connect(ctx); err != nil && ctx.Err() == nil {
				d.log.Warn("local broker", "err", err)
			}
		}()
	}
	rec, err := d.agent.Resume(ctx)
	if err != nil && ctx.Err() == nil {
		d.log.Error("resume", "state", rec.State, "err", err)
	}
	d.publishStatus(ctx)
	n.Ready("update state " + string(rec.State))
	if d.queue != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.worker(ctx)
		}()
	}
	<-ctx.Done()
	n.Stopping()
	return nil
}

func (d *daemon) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-d.queue:
			d.handle(ctx, m)
		}
	}
}

func (d *daemon) handle(ctx context.Context, m mqtt.Message) {
	op := m.Topic[strings.LastIndexByte(m.Topic, '/')+1:]
	var req request
	resp := response{}
	err := json.Unmarshal(m.Payload, &req)
	resp.CorrelationID = req.CorrelationID
	if err == nil {
		switch op {
		case "install":
			if req.Source == "" {
				err = errors.New("install needs a source")
				break
			}
			resp.Update, err = d.agent.Install(ctx, req.Source)
		case "commit":
			resp.Update, err = d.agent.Commit(ctx)
		case "rollback":
			resp.Update, err = d.agent.Rollback(ctx)
		case "reboot":
			err = d.agent.Reboot(ctx)
		case "status":
		default:
			err = fmt.Errorf("unknown request %q", op)
		}
	}
	if st, serr := d.agent.Status(); serr == nil {
		resp.Update = st.Record
	}
	resp.OK = err == nil
	if err != nil {
		resp.Error = err.Error()
		d.log.Warn("request failed", "op", op, "err", err)
	}
	d.publish(ctx, d.prefix+"/response/"+op, resp, false)
	d.publishStatus(ctx)
}

func (d *daemon) publishStatus(ctx context.Context) {
	st, err := d.agent.Status()
	if err != nil {
		d.log.Warn("status", "err", err)
		return
	}
	d.publish(ctx, d.prefix+"/status", st, true)
}

func (d *daemon) progress(p install.Progress) {
	pct := int64(0)
	if p.Total > 0 {
		pct = 100 * p.Written / p.Total
	}
	if d.lastProg.Swap(pct) == pct && p.Written != p.Total {
		return
	}
	d.publish(context.Background(), d.prefix+"/progress", p, false)
}

func (d *daemon) publish(ctx context.Context, topic string, v any, retained bool) {
	if d.client == nil || !d.client.IsConnected() {
		return
	}
	data, err := json.Marshal(v)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d.client.Publish(ctx, mqtt.Message{Topic: topic, Payload: data, QoS: 1, Retained: retained}); err != nil {
		d.log.Warn("publish", "topic", topic, "err", err)
	}
}
