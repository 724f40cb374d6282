// Package supervise starts a set of services in dependency order, restarts
// them when they exit, and stops them in reverse order. It is the service
// manager of the image's init (PID 1) and runs unchanged on a host, which is
// how its tests run.
//
// Readiness follows systemd's conventions so that our daemons need no special
// code: a "notify" service gets NOTIFY_SOCKET and reports READY=1 (and, with a
// watchdog, WATCHDOG=1 pings and WATCHDOG_USEC in its environment), a "tcp"
// service is ready when its address accepts connections, and a "started"
// service is ready as soon as it runs.
package supervise

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// ReadyKind says how the supervisor learns that a service is ready.
type ReadyKind string

// Readiness kinds.
const (
	ReadyStarted ReadyKind = "started" // ready once the process has run for Options.StartedSettle
	ReadyNotify  ReadyKind = "notify"  // ready on READY=1 over NOTIFY_SOCKET
	ReadyTCP     ReadyKind = "tcp"     // ready when ReadyAddr accepts a TCP connection
)

// Service describes one supervised program.
type Service struct {
	Name  string
	Path  string
	Args  []string
	Env   []string // added to Options.Env
	After []string // services that must be ready before this one starts
	Ready ReadyKind
	// ReadyAddr is the host:port dialled for ReadyTCP.
	ReadyAddr string
	// Watchdog, for notify services, is the longest silence between
	// WATCHDOG=1 pings before the service is killed and restarted. Zero
	// disables it.
	Watchdog time.Duration
}

// Options configure a Supervisor. Zero values pick the documented defaults.
type Options struct {
	Log *slog.Logger
	// RuntimeDir holds the notify sockets (default os.TempDir()).
	RuntimeDir string
	// Output returns where a service's stdout and stderr go; nil discards.
	Output func(name string) io.Writer
	// Env is the base environment of every service.
	Env []string
	// MinBackoff and MaxBackoff bound the delay before a restart, which
	// doubles on each crash and resets after a run longer than StableAfter.
	MinBackoff, MaxBackoff, StableAfter time.Duration
	// StartedSettle is how long a "started" service must run before it
	// counts as ready, so a program that dies at once is never ready
	// (default 1 s).
	StartedSettle time.Duration
	// StopTimeout is how long a service may take to exit after SIGTERM
	// before it gets SIGKILL (default 5 s).
	StopTimeout time.Duration
	// OnEvent, if set, is called for every state change, from the service's
	// goroutine; it must not block.
	OnEvent func(Event)
}

// EventKind names what happened to a service.
type EventKind string

// Event kinds.
const (
	EventStarted  EventKind = "started"
	EventReady    EventKind = "ready"
	EventExited   EventKind = "exited"
	EventWatchdog EventKind = "watchdog"
	EventStopped  EventKind = "stopped"
)

// Event reports a state change of one service.
type Event struct {
	Service string
	Kind    EventKind
	PID     int
	Err     error // exit status for EventExited
}

// Status is a snapshot of one service.
type Status struct {
	Name     string
	PID      int // 0 when not running
	Ready    bool
	Restarts int
	LastErr  error
}

// Supervisor runs services. Create it with New and call Run once.
type Supervisor struct {
	opts    Options
	order   []string
	runners map[string]*runner

	// mu guards starting processes and the pid table, so that Owns never
	// misses a child that has just been forked (see init's orphan reaper).
	mu   sync.Mutex
	pids map[int]string

	allReady chan struct{}
}

// New checks the services (names, dependencies) and returns a supervisor.
func New(svcs []Service, opts Options) (*Supervisor, error) {
	order, err := Order(svcs)
	if err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.RuntimeDir == "" {
		opts.RuntimeDir = os.TempDir()
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(5*time.Second, opts.MinBackoff)
	}
	if opts.StableAfter <= 0 {
		opts.StableAfter = 10 * time.Second
	}
	if opts.StartedSettle <= 0 {
		opts.StartedSettle = time.Second
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 5 * time.Second
	}
	s := &Supervisor{opts: opts, order: order, runners: map[string]*runner{}, pids: map[int]string{}, allReady: make(chan struct{})}
	for _, svc := range svcs {
		switch svc.Ready {
		case "":
			svc.Ready = ReadyStarted
		case ReadyStarted, ReadyNotify:
		case ReadyTCP:
			if svc.ReadyAddr == "" {
				return nil, fmt.Errorf("service %q: ready tcp needs an address: %w", svc.Name, ErrUnknown)
			}
		default:
			return nil, fmt.Errorf("service %q: readiness %q: %w", svc.Name, svc.Ready, ErrUnknown)
		}
		s.runners[svc.Name] = &runner{svc: svc, sup: s, ready: make(chan struct{}), done: make(chan struct{})}
	}
	return s, nil
}

// Order returns the start order.
func (s *Supervisor) Order() []string { return append([]string(nil), s.order...) }

// Ready returns a channel closed when the named service first becomes ready,
// or nil for an unknown name.
func (s *Supervisor) Ready(name string) <-chan struct{} {
	if r, ok := s.runners[name]; ok {
		return r.ready
	}
	return nil
}

// AllReady returns a channel closed once every service has been ready.
func (s *Supervisor) AllReady() <-chan struct{} { return s.allReady }

// Owns reports whether pid is a service process this supervisor waits for.
func (s *Supervisor) Owns(pid int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.pids[pid]
	return ok
}

// Status returns a snapshot of every service in start order.
func (s *Supervisor) Status() []Status {
	out := make([]Status, 0, len(s.order))
	for _, n := range s.order {
		r := s.runners[n]
		r.mu.Lock()
		out = append(out, r.st)
		r.mu.Unlock()
	}
	return out
}

// Run starts the services and supervises them until ctx is cancelled, then
// stops them in reverse start order and returns. Cancellation is the normal
// way to stop, so Run returns nil then.
func (s *Supervisor) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range s.order {
		r := s.runners[n]
		r.st.Name = n
		wg.Add(1)
		// Owned by Run; exits when runCtx is cancelled and its process is gone.
		go func() { defer wg.Done(); r.loop(runCtx) }()
	}
	// Owned by Run; exits when every service has been ready or on cancel.
	go func() {
		for _, n := range s.order {
			select {
			case <-s.runners[n].ready:
			case <-runCtx.Done():
				return
			}
		}
		close(s.allReady)
	}()
	<-ctx.Done()
	for i := len(s.order) - 1; i >= 0; i-- {
		s.runners[s.order[i]].stop(s.opts.StopTimeout)
	}
	cancel()
	wg.Wait()
	return nil
}

func (s *Supervisor) emit(e Event) {
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(e)
	}
}

func (s *Supervisor) env(r *runner) []string {
	env := append(append([]string(nil), s.opts.Env...), r.svc.Env...)
	if r.svc.Ready == ReadyNotify || r.svc.Watchdog > 0 {
		env = append(env, "NOTIFY_SOCKET="+r.sockPath())
	}
	if r.svc.Watchdog > 0 {
		env = append(env, "WATCHDOG_USEC="+strconv.FormatInt(r.svc.Watchdog.Microseconds(), 10))
	}
	return env
}

func (s *Supervisor) output(name string) io.Writer {
	if s.opts.Output == nil {
		return io.Discard
	}
	if w := s.opts.Output(name); w != nil {
		return w
	}
	return io.Discard
}

// start forks the service's process under the pid-table lock.
func (s *Supervisor) start(r *runner) (*exec.Cmd, error) {
	cmd := exec.Command(r.svc.Path, r.svc.Args...)
	cmd.Env = s.env(r)
	out := s.output(r.svc.Name)
	cmd.Stdout, cmd.Stderr = out, out
	// A process group of its own, so a stop reaches the service's children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.pids[cmd.Process.Pid] = r.svc.Name
	return cmd, nil
}

func (s *Supervisor) forget(pid int) {
	s.mu.Lock()
	delete(s.pids, pid)
	s.mu.Unlock()
}

func (r *runner) sockPath() string {
	return filepath.Join(r.sup.opts.RuntimeDir, r.svc.Name+".notify")
}
