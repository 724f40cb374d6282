// Package mgr is the container manager: the source of truth for the
// containers of the service. It owns their state machine, validation and
// defaults, restart policies, persistence (bbolt) and live restore, and
// drives containerd (package ctrd) and the network (package network).
//
// Beyond upstream, stopping the daemon leaves containers running; the next
// daemon re-attaches to them. After a host reboot (no task left), containers
// whose restart policy asks for it are started again.
package mgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kantofw/kanto/services/containers/ctrd"
	"github.com/kantofw/kanto/services/containers/model"
	"github.com/kantofw/kanto/services/containers/network"
)

// Config configures the manager.
type Config struct {
	// HomeDir holds the database; ContainersDir the per-container files
	// (logs, hosts, resolv.conf).
	HomeDir       string
	ContainersDir string
	// StopTimeout is the default stop timeout.
	StopTimeout time.Duration
	// OOMKilled, if set, tells whether container id's cgroup saw an OOM
	// kill; asked when a task dies of SIGKILL, before it is deleted.
	OOMKilled func(id string) bool
}

// Event is a change of a container, for subscribers such as the things
// features. Action is created, running, paused, resumed, stopped, exited,
// updated, renamed or removed.
type Event struct {
	Action    string
	Container *model.Container
	Time      time.Time
}

// Manager manages containers. Safe for concurrent use.
type Manager struct {
	cfg Config
	log *slog.Logger
	rt  *ctrd.Client
	net *network.Manager
	db  *records
	now func() time.Time

	// runCtx bounds exit watchers and restart timers (the daemon's life).
	runCtx context.Context

	mu      sync.Mutex
	entries map[string]*entry
	subs    []func(Event)
}

// entry is one container with its lock. Operations hold mu for their whole
// duration, so they are serialised per container.
type entry struct {
	mu sync.Mutex
	c  *model.Container
	// run counts starts; an exit or timer for an older run is ignored.
	run int
	// cur is the current run's exit, written by its watcher before done is
	// closed (so readers need no lock once done is closed).
	cur *runExit
	// oom is set by the OOM event of the current run; atomic because the
	// event may race with the exit.
	oom     atomic.Bool
	timer   *time.Timer
	delay   time.Duration
	removed bool
	// hub connects an interactive container's streams (nil otherwise).
	hub *ioHub
	// name mirrors c.Name for uniqueness checks; guarded by Manager.mu.
	name string
	cid  string // immutable copy of c.ID
}

// id is the container id, which never changes (safe without the lock).
func (e *entry) id() string { return e.cid }

// runExit is how one run of a container ended.
type runExit struct {
	done chan struct{}
	exit ctrd.Exit
}

// New opens the database and loads the records; call Restore next.
func New(ctx context.Context, cfg Config, rt *ctrd.Client, nm *network.Manager, log *slog.Logger) (*Manager, error) {
	if err := os.MkdirAll(cfg.ContainersDir, 0o755); err != nil {
		return nil, err
	}
	db, err := openRecords(filepath.Join(cfg.HomeDir, "container-management.db"))
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, log: log, rt: rt, net: nm, db: db, now: time.Now, runCtx: ctx, entries: map[string]*entry{}}
	recs, err := db.all()
	if err != nil {
		db.close()
		return nil, err
	}
	for _, c := range recs {
		model.FillDefaults(c)
		m.entries[c.ID] = &entry{c: c, name: c.Name, cid: c.ID}
	}
	return m, nil
}

// Close closes the database; containers keep running.
func (m *Manager) Close() error {
	m.mu.Lock()
	for _, e := range m.entries {
		e.mu.Lock()
		if e.timer != nil {
			e.timer.Stop()
		}
		e.mu.Unlock()
	}
	m.mu.Unlock()
	return m.db.close()
}

// Subscribe registers fn for every event; fn must not block.
func (m *Manager) Subscribe(fn func(Event)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subs = append(m.subs, fn)
}

func (m *Manager) publish(action string, c *model.Container) {
	m.mu.Lock()
	subs := append([]func(Event){}, m.subs...)
	m.mu.Unlock()
	ev := Event{Action: action, Container: c.Clone(), Time: m.now()}
	for _, fn := range subs {
		fn(ev)
	}
}

func (m *Manager) get(id string) (*entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[id]
	if !ok {
		return nil, model.Errorf(model.ErrNotFound, "no such container with id = %s exists", id)
	}
	return e, nil
}

// lock returns the entry of id locked, or ErrNotFound (also for an entry
// removed while waiting for its lock).
func (m *Manager) lock(id string) (*entry, error) {
	e, err := m.get(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.removed {
		e.mu.Unlock()
		return nil, model.Errorf(model.ErrNotFound, "no such container with id = %s exists", id)
	}
	return e, nil
}

func (m *Manager) save(c *model.Container) error {
	if err := m.db.put(c); err != nil {
		return fmt.Errorf("persist container %s: %w", c.ID, err)
	}
	return nil
}

// Get returns a copy of the container, or ErrNotFound.
func (m *Manager) Get(id string) (*model.Container, error) {
	e, err := m.lock(id)
	if err != nil {
		return nil, err
	}
	defer e.mu.Unlock()
	return e.c.Clone(), nil
}

// List returns copies of all containers, oldest first.
func (m *Manager) List() []*model.Container {
	m.mu.Lock()
	es := make([]*entry, 0, len(m.entries))
	for _, e := range m.entries {
		es = append(es, e)
	}
	m.mu.Unlock()
	out := make([]*model.Container, 0, len(es))
	for _, e := range es {
		e.mu.Lock()
		if !e.removed {
			out = append(out, e.c.Clone())
		}
		e.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Created != out[j].Created {
			return out[i].Created < out[j].Created
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Create validates c, pulls its image if needed, prepares its snapshot and
// stores it as Created. progress receives pull progress and may be nil.
func (m *Manager) Create(ctx context.Context, c *model.Container, progress ctrd.Progress) (*model.Container, error) {
	c = c.Clone()
	model.FillDefaults(c)
	model.FillMemorySwap(c)
	c.State = &model.State{Status: model.Creating, Pid: -1}
	c.NetworkSettings = nil
	c.RestartCount, c.ManuallyStopped, c.StartedSuccessfullyBefore = 0, false, false
	if err := model.Validate(c); err != nil {
		return nil, err
	}
	m.mu.Lock()
	if _, ok := m.entries[c.ID]; ok {
		m.mu.Unlock()
		return nil, model.Errorf(model.ErrConflict, "container with id = %s already exists", c.ID)
	}
	if m.nameTakenLocked(c.Name, "") {
		m.mu.Unlock()
		return nil, model.Errorf(model.ErrConflict, "container with name = %s already exists", c.Name)
	}
	e := &entry{c: c, name: c.Name, cid: c.ID}
	e.mu.Lock()
	m.entries[c.ID] = e
	m.mu.Unlock()
	defer e.mu.Unlock()

	fail := func(err error) (*model.Container, error) {
		m.mu.Lock()
		delete(m.entries, c.ID)
		m.mu.Unlock()
		e.removed = true
		_ = os.RemoveAll(m.ctrDir(c.ID))
		return nil, err
	}
	if err := os.MkdirAll(m.ctrDir(c.ID), 0o755); err != nil {
		return fail(err)
	}
	img, err := m.rt.EnsureImage(ctx, c.Image.Name, progress)
	if err != nil {
		return fail(err)
	}
	if err := m.rt.PrepareSnapshot(ctx, c.ID, img); err != nil {
		return fail(err)
	}
	c.State = &model.State{Status: model.Created, Pid: -1}
	c.Created = model.Now(m.now())
	if err := m.save(c); err != nil {
		_ = m.rt.RemoveSnapshot(ctx, c.ID)
		return fail(err)
	}
	m.publish("created", c)
	return c.Clone(), nil
}

// nameTakenLocked reports whether another container (not except) has name.
// Unlike upstream, names are unique: deployment and the CLI's --name select
// by name. It reads names without the entries' locks: names only change
// under m.mu too (Rename takes it), so this is consistent. Called with m.mu.
func (m *Manager) nameTakenLocked(name, except string) bool {
	for id, e := range m.entries {
		if id != except && e.name == name {
			return true
		}
	}
	return false
}

func (m *Manager) ctrDir(id string) string { return filepath.Join(m.cfg.ContainersDir, id) }

// LogPath is where the container's json-file log is.
func (m *Manager) LogPath(c *model.Container) string {
	if dc := c.HostConfig.LogConfig.DriverConfig; dc != nil && dc.RootDir != "" {
		return filepath.Join(dc.RootDir, c.ID, "json.log")
	}
	return filepath.Join(m.ctrDir(c.ID), "json.log")
}

// Start starts a Created, Stopped or Exited container.
func (m *Manager) Start(ctx context.Context, id string) error {
	e, err := m.lock(id)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	switch e.c.State.Status {
	case model.Paused:
		return model.Errorf(model.ErrState, "the container with id = %s is paused - cannot start it - try unpausing it instead", id)
	case model.Running:
		return model.Errorf(model.ErrState, "the container with id = %s is already running", id)
	case model.Dead:
		return model.Errorf(model.ErrState, "the container with id = %s is dead - cannot start it", id)
	}
	e.c.RestartCount = 0
	e.c.ManuallyStopped = false
	e.delay = 0
	if e.timer != nil {
		e.timer.Stop()
	}
	return m.startLocked(ctx, e)
}

// startLocked runs the container; on failure the state becomes Stopped with
// the error and the error is returned.
func (m *Manager) startLocked(ctx context.Context, e *entry) error {
	c := e.c
	if err := m.startTask(ctx, e); err != nil {
		c.State.Status = model.Stopped
		c.State.Running, c.State.Paused = false, false
		c.State.Error = err.Error()
		c.State.FinishedAt = model.Now(m.now())
		c.State.Pid = -1
		if serr := m.save(c); serr != nil {
			m.log.Error("persist failed start", "id", c.ID, "err", serr)
		}
		return err
	}
	return nil
}

func (m *Manager) startTask(ctx context.Context, e *entry) error {
	c := e.c
	if c.HostConfig.NetworkMode == model.NetworkHost {
		if h, err := os.Hostname(); err == nil {
			c.HostName = h
		}
	}
	att, err := m.net.Setup(ctx, c)
	if err != nil {
		return err
	}
	c.NetworkSettings = settings(c, att)
	files, err := m.writeNetFiles(c, att)
	if err != nil {
		_ = m.net.Teardown(ctx, c)
		c.NetworkSettings = nil
		return err
	}
	spec := ctrd.RunSpec{Container: c, NetNS: att.NetNS, Hosts: files.hosts, Resolv: files.resolv, Hostname: files.hostname}
	if dc := c.HostConfig.LogConfig.DriverConfig; dc.Type == model.LogDriverJSONFile {
		spec.LogFile = m.LogPath(c)
		spec.LogMaxFiles = dc.MaxFiles
		spec.LogMaxSize, _ = model.ParseSize(dc.MaxSize)
		if mc := c.HostConfig.LogConfig.ModeConfig; mc != nil && mc.Mode == model.LogModeNonBlock {
			spec.LogBuffer, _ = model.ParseSize(mc.MaxBufferSize)
		}
		if err := os.MkdirAll(filepath.Dir(spec.LogFile), 0o755); err != nil {
			return err
		}
	}
	if c.IOConfig.OpenStdin {
		if e.hub == nil {
			e.hub = newHub()
		}
		st, err := e.hub.streams(c, spec.LogFile, spec.LogMaxSize, spec.LogMaxFiles)
		if err != nil {
			return err
		}
		spec.Streams = st
	}
	pid, exit, err := m.rt.Run(ctx, m.runCtx, spec)
	if err != nil {
		if e.hub != nil {
			e.hub.endRun()
		}
		_ = m.net.Teardown(ctx, c)
		c.NetworkSettings = nil
		return err
	}
	if e.hub != nil && e.hub.pendingStdinClose() {
		if err := m.rt.CloseStdin(ctx, c.ID); err != nil {
			m.log.Warn("close stdin", "id", c.ID, "err", err)
		}
	}
	c.State = &model.State{Status: model.Running, Running: true, Pid: int64(pid), StartedAt: model.Now(m.now()), FinishedAt: c.State.FinishedAt, ExitCode: 0}
	c.StartedSuccessfullyBefore = true
	m.watch(e, exit)
	if err := m.save(c); err != nil {
		return err
	}
	m.publish("running", c)
	return nil
}

// watch starts the exit watcher of the current run. It is owned by the run:
// it ends when the task exits or the daemon's context ends.
func (m *Manager) watch(e *entry, exit <-chan ctrd.Exit) {
	e.run++
	run := e.run
	re := &runExit{done: make(chan struct{})}
	e.cur = re
	e.oom.Store(false)
	go func() {
		var ex ctrd.Exit
		for {
			select {
			case ex = <-exit:
			case <-m.runCtx.Done():
				return
			}
			if m.runCtx.Err() != nil {
				return // the daemon is going away; the next one re-attaches
			}
			if ex.Err == nil || !ex.At.IsZero() {
				break
			}
			// The wait stream broke (containerd restarted): the shim and the
			// task live on, so wait on them again.
			exit = m.rewatch(e.id())
			if exit == nil {
				return
			}
		}
		re.exit = ex
		if ex.Code == 137 && !e.oom.Load() && m.cfg.OOMKilled != nil && m.cfg.OOMKilled(e.id()) {
			// The OOM event may trail the exit; the cgroup knows already.
			e.oom.Store(true)
		}
		close(re.done)
		m.onExit(e, run, re)
	}()
}

// rewatch re-attaches to the task of id after the wait stream broke,
// retrying while containerd is unreachable. A task that is gone yields an
// exit with code 0 (its real status was lost with containerd); nil means
// the daemon is stopping.
func (m *Manager) rewatch(id string) <-chan ctrd.Exit {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		select {
		case <-m.runCtx.Done():
			return nil
		case <-time.After(delay):
		}
		ts, err := m.rt.Reattach(m.runCtx, m.runCtx, id, nil)
		switch {
		case err == nil && ts.Exit != nil:
			m.log.Info("re-attached after losing containerd", "id", id)
			return ts.Exit
		case err == nil || errors.Is(err, ctrd.ErrNotRunning):
			code := uint32(0)
			if ts != nil {
				code = ts.ExitCode
			}
			ch := make(chan ctrd.Exit, 1)
			ch <- ctrd.Exit{Code: code, At: time.Now()}
			return ch
		default:
			m.log.Debug("containerd not reachable yet", "id", id, "err", err)
		}
	}
}

// onExit handles a task that ended on its own (not through Stop/Remove).
func (m *Manager) onExit(e *entry, run int, re *runExit) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.removed || e.run != run || (e.c.State.Status != model.Running && e.c.State.Status != model.Paused) {
		return
	}
	ctx := context.WithoutCancel(m.runCtx)
	m.finish(ctx, e, model.Exited, int64(re.exit.Code), "")
	m.publish("exited", e.c)
	m.maybeRestart(e)
}

// finish releases the task and network and records the end of a run.
func (m *Manager) finish(ctx context.Context, e *entry, st model.Status, code int64, errMsg string) {
	c := e.c
	if err := m.rt.Cleanup(ctx, c.ID); err != nil {
		m.log.Warn("cleanup task", "id", c.ID, "err", err)
	}
	if e.hub != nil {
		e.hub.endRun()
	}
	if err := m.net.Teardown(ctx, c); err != nil {
		m.log.Warn("network teardown", "id", c.ID, "err", err)
	}
	c.NetworkSettings = nil
	c.State.Status = st
	c.State.Running, c.State.Paused = false, false
	c.State.Exited = st == model.Exited
	c.State.ExitCode = code
	c.State.Pid = -1
	c.State.FinishedAt = model.Now(m.now())
	c.State.Error = errMsg
	if e.oom.Load() {
		c.State.OOMKilled = true
		if c.State.Error == "" {
			c.State.Error = "OOM Killed"
		}
	}
	if err := m.save(c); err != nil {
		m.log.Error("persist", "id", c.ID, "err", err)
	}
}

// maybeRestart schedules a restart per the policy, with backoff.
func (m *Manager) maybeRestart(e *entry) {
	c := e.c
	if !shouldRestart(c, c.State.ExitCode) {
		return
	}
	var ran time.Duration
	if s, err := time.Parse(model.TimeFormat, c.State.StartedAt); err == nil {
		if f, err := time.Parse(model.TimeFormat, c.State.FinishedAt); err == nil {
			ran = f.Sub(s)
		}
	}
	e.delay = nextDelay(e.delay, c.HostConfig.RestartPolicy, ran)
	c.RestartCount++
	c.State.Restarting = true
	if err := m.save(c); err != nil {
		m.log.Error("persist", "id", c.ID, "err", err)
	}
	run := e.run
	m.log.Info("restarting container", "id", c.ID, "in", e.delay, "count", c.RestartCount)
	if e.timer != nil {
		e.timer.Stop()
	}
	// The timer is owned by the entry: Stop, Start, Remove and Close stop it.
	e.timer = time.AfterFunc(e.delay, func() {
		if m.runCtx.Err() != nil {
			return
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.removed || e.run != run || (e.c.State.Status != model.Exited && e.c.State.Status != model.Stopped) {
			return
		}
		e.c.State.Restarting = false
		if err := m.startLocked(context.WithoutCancel(m.runCtx), e); err != nil {
			m.log.Warn("restart failed", "id", e.c.ID, "err", err)
		}
	})
}

// Stop stops a running or paused container.
func (m *Manager) Stop(ctx context.Context, id string, opts *model.StopOptions) error {
	if err := model.ValidateStopOptions(opts); err != nil {
		return err
	}
	e, err := m.lock(id)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	if st := e.c.State.Status; st != model.Running && st != model.Paused {
		return model.Errorf(model.ErrState, "cannot perform stop operation for container: %s, with state: %s", id, st)
	}
	e.c.ManuallyStopped = true
	if err := m.stopLocked(ctx, e, opts); err != nil {
		return err
	}
	m.publish("stopped", e.c)
	return nil
}

func (m *Manager) stopLocked(ctx context.Context, e *entry, opts *model.StopOptions) error {
	c := e.c
	if e.timer != nil {
		e.timer.Stop()
	}
	timeout := m.cfg.StopTimeout
	sig := syscall.SIGTERM
	force := false
	if opts != nil {
		if opts.Timeout > 0 {
			timeout = time.Duration(opts.Timeout) * time.Second
		}
		if opts.Signal != "" {
			s, err := model.ParseSignal(opts.Signal)
			if err != nil {
				return err
			}
			sig = s
		}
		force = opts.Force
	}
	if c.State.Status == model.Paused {
		// A frozen process cannot handle the signal; thaw it after sending.
		defer func() { _ = m.rt.Resume(ctx, c.ID) }()
	}
	var done chan struct{}
	if e.cur != nil {
		done = e.cur.done
	}
	if err := m.rt.Kill(ctx, c.ID, sig, false); err != nil && !errors.Is(err, ctrd.ErrNotRunning) {
		return fmt.Errorf("stop container %s: %w", c.ID, err)
	}
	if c.State.Status == model.Paused {
		_ = m.rt.Resume(ctx, c.ID)
	}
	if !waitClosed(done, timeout) {
		if !force {
			return fmt.Errorf("could not stop container with ID = %s with %s", c.ID, sigName(sig))
		}
		if err := m.rt.Kill(ctx, c.ID, syscall.SIGKILL, true); err != nil && !errors.Is(err, ctrd.ErrNotRunning) {
			return fmt.Errorf("kill container %s: %w", c.ID, err)
		}
		if !waitClosed(done, timeout) {
			return fmt.Errorf("could not stop container with ID = %s with SIGKILL", c.ID)
		}
	}
	e.run++ // the watcher's onExit for this run is now stale
	code := int64(0)
	if e.cur != nil {
		code = int64(e.cur.exit.Code)
	}
	m.finish(ctx, e, model.Stopped, code, "")
	return nil
}

func waitClosed(ch chan struct{}, d time.Duration) bool {
	if ch == nil {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

func sigName(s syscall.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGINT:
		return "SIGINT"
	}
	return fmt.Sprintf("signal %d", int(s))
}

// Pause freezes a running container.
func (m *Manager) Pause(ctx context.Context, id string) error {
	e, err := m.lock(id)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	if e.c.State.Status != model.Running {
		return model.Errorf(model.ErrState, "container with id = %s is not running - current status is %s", id, e.c.State.Status)
	}
	if err := m.rt.Pause(ctx, id); err != nil {
		return fmt.Errorf("pause container %s: %w", id, err)
	}
	e.c.State.Status, e.c.State.Paused, e.c.State.Running = model.Paused, true, false
	if err := m.save(e.c); err != nil {
		return err
	}
	m.publish("paused", e.c)
	return nil
}

// Unpause thaws a paused container.
func (m *Manager) Unpause(ctx context.Context, id string) error {
	e, err := m.lock(id)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	if e.c.State.Status != model.Paused {
		return model.Errorf(model.ErrState, "container id = %s is not paused - cannot unpause it ", id)
	}
	if err := m.rt.Resume(ctx, id); err != nil {
		return fmt.Errorf("unpause container %s: %w", id, err)
	}
	e.c.State.Status, e.c.State.Paused, e.c.State.Running = model.Running, false, true
	if err := m.save(e.c); err != nil {
		return err
	}
	m.publish("resumed", e.c)
	return nil
}

// Rename changes the container's name; an empty or unchanged name is a
// no-op, as upstream.
func (m *Manager) Rename(_ context.Context, id, name string) error {
	if err := model.ValidateName(name); err != nil {
		return err
	}
	e, err := m.lock(id)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	if name == "" || name == e.c.Name {
		return nil
	}
	m.mu.Lock()
	if m.nameTakenLocked(name, id) {
		m.mu.Unlock()
		return model.Errorf(model.ErrConflict, "container with name = %s already exists", name)
	}
	e.name = name
	m.mu.Unlock()
	e.c.Name = name
	if err := m.save(e.c); err != nil {
		return err
	}
	m.publish("renamed", e.c)
	return nil
}

// Update changes the restart policy and/or the memory limits; the limits
// apply at once to a running container.
func (m *Manager) Update(ctx context.Context, id string, opts *model.UpdateOptions) error {
	if opts == nil {
		return nil
	}
	if err := model.ValidateRestartPolicy(opts.RestartPolicy); err != nil {
		return err
	}
	if err := model.ValidateResources(opts.Resources); err != nil {
		return err
	}
	e, err := m.lock(id)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	c := e.c
	policyChanged := false
	if opts.Resources != nil && !sameResources(c.HostConfig.Resources, opts.Resources) {
		st := c.State.Status
		if st == model.Running || st == model.Paused {
			mem, err := ctrd.MemoryUpdate(opts.Resources)
			if err != nil {
				return err
			}
			if err := m.rt.UpdateMemory(ctx, id, mem); err != nil {
				return fmt.Errorf("update resources of container %s: %w", id, err)
			}
		}
		if *opts.Resources == (model.Resources{}) {
			c.HostConfig.Resources = nil
		} else {
			r := *opts.Resources
			c.HostConfig.Resources = &r
		}
	}
	if opts.RestartPolicy != nil && *opts.RestartPolicy != *c.HostConfig.RestartPolicy {
		rp := *opts.RestartPolicy
		c.HostConfig.RestartPolicy = &rp
		e.delay = 0
		policyChanged = true
	}
	if err := m.save(c); err != nil {
		return err
	}
	m.publish("updated", c)
	if policyChanged && (c.State.Status == model.Exited || c.State.Status == model.Stopped) && !c.ManuallyStopped {
		m.maybeRestart(e)
	}
	return nil
}

func sameResources(a, b *model.Resources) bool {
	if a == nil {
		a = &model.Resources{}
	}
	return *a == *b
}

// Remove deletes a container; a running or paused one only with force.
func (m *Manager) Remove(ctx context.Context, id string, force bool, opts *model.StopOptions) error {
	if err := model.ValidateStopOptions(opts); err != nil {
		return err
	}
	e, err := m.lock(id)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	c := e.c
	if st := c.State.Status; st == model.Running || st == model.Paused {
		if !force {
			return model.Errorf(model.ErrState, "container with id = %s is not stopped - must set the force flag to true to remove it", id)
		}
		o := model.StopOptions{Force: true}
		if opts != nil {
			o = *opts
			o.Force = true
		}
		if err := m.stopLocked(ctx, e, &o); err != nil {
			return err
		}
	}
	if e.timer != nil {
		e.timer.Stop()
	}
	if err := m.rt.Cleanup(ctx, id); err != nil {
		m.log.Warn("cleanup on remove", "id", id, "err", err)
	}
	if err := m.rt.RemoveSnapshot(ctx, id); err != nil {
		return err
	}
	if err := m.db.delete(id); err != nil {
		return err
	}
	_ = os.RemoveAll(m.ctrDir(id))
	if dc := c.HostConfig.LogConfig.DriverConfig; dc != nil && dc.RootDir != "" {
		_ = os.RemoveAll(filepath.Join(dc.RootDir, id))
	}
	e.removed = true
	m.mu.Lock()
	delete(m.entries, id)
	m.mu.Unlock()
	c.State.Status, c.State.Dead = model.Dead, true
	m.publish("removed", c)
	return nil
}

// OnOOM marks the running container id as OOM-killed; its exit is recorded
// with oomKilled=true.
func (m *Manager) OnOOM(id string) {
	e, err := m.get(id)
	if err != nil {
		return
	}
	e.oom.Store(true)
}

// ImagesInUse lists the image refs of all containers.
func (m *Manager) ImagesInUse() []string {
	var out []string
	for _, c := range m.List() {
		out = append(out, c.Image.Name)
	}
	return out
}
