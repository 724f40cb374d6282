package supervise

import (
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// runner supervises one service. Its loop goroutine is owned by
// Supervisor.Run and exits when the run context is cancelled and the current
// process (if any) has exited.
type runner struct {
	svc Service
	sup *Supervisor

	ready     chan struct{}
	readyOnce sync.Once
	done      chan struct{} // closed when loop returns

	mu       sync.Mutex
	st       Status
	proc     *os.Process
	stopping bool
}

func (r *runner) markReady(pid int) {
	r.mu.Lock()
	r.st.Ready = true
	r.mu.Unlock()
	// The event first: whoever waits on the channel sees the event's
	// effects (console line, status file) already done.
	r.sup.emit(Event{Service: r.svc.Name, Kind: EventReady, PID: pid})
	r.readyOnce.Do(func() { close(r.ready) })
}

func (r *runner) loop(ctx context.Context) {
	defer close(r.done)
	for _, d := range r.svc.After {
		select {
		case <-r.sup.runners[d].ready:
		case <-ctx.Done():
			return
		}
	}
	var msgs chan string
	if r.svc.Ready == ReadyNotify || r.svc.Watchdog > 0 {
		conn, err := r.listen()
		if err != nil {
			r.sup.opts.Log.Error("notify socket", "service", r.svc.Name, "err", err)
			r.setErr(err)
			return
		}
		msgs = make(chan string, 16)
		var wg sync.WaitGroup
		wg.Add(1)
		// Owned by loop; exits when loop closes conn below.
		go func() { defer wg.Done(); readNotify(conn, msgs) }()
		defer func() { conn.Close(); wg.Wait() }()
	}
	backoff := r.sup.opts.MinBackoff
	for {
		began := time.Now()
		if !r.runOnce(ctx, msgs) {
			return
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > r.sup.opts.StableAfter {
			backoff = r.sup.opts.MinBackoff
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, r.sup.opts.MaxBackoff)
	}
}

func (r *runner) setErr(err error) {
	r.mu.Lock()
	r.st.LastErr = err
	r.mu.Unlock()
}

// runOnce runs the process once, until it exits. It returns false if the
// service could not be started because the supervisor is stopping.
func (r *runner) runOnce(ctx context.Context, msgs chan string) bool {
	log := r.sup.opts.Log.With("service", r.svc.Name)
	r.mu.Lock()
	if r.stopping || ctx.Err() != nil {
		r.mu.Unlock()
		return false
	}
	cmd, err := r.sup.start(r)
	if err != nil {
		r.st.LastErr = err
		r.st.Restarts++
		r.mu.Unlock()
		log.Error("start failed", "err", err)
		r.sup.emit(Event{Service: r.svc.Name, Kind: EventExited, Err: err})
		return true
	}
	pid := cmd.Process.Pid
	r.proc = cmd.Process
	r.st.PID = pid
	r.st.Ready = false
	r.mu.Unlock()
	log.Info("started", "pid", pid)
	r.sup.emit(Event{Service: r.svc.Name, Kind: EventStarted, PID: pid})

	exited := make(chan error, 1)
	// Owned by runOnce; exits when the process does.
	go func() { exited <- cmd.Wait() }()

	var tcpReady <-chan struct{}
	probeCtx, stopProbe := context.WithCancel(context.Background())
	defer stopProbe()
	var settled <-chan time.Time
	switch r.svc.Ready {
	case ReadyStarted:
		st := time.NewTimer(r.sup.opts.StartedSettle)
		defer st.Stop()
		settled = st.C
	case ReadyTCP:
		ch := make(chan struct{})
		tcpReady = ch
		// Owned by runOnce; stopped by stopProbe.
		go probeTCP(probeCtx, r.svc.ReadyAddr, ch)
	}
	var wd <-chan time.Time
	var wdTimer *time.Timer
	if r.svc.Watchdog > 0 {
		wdTimer = time.NewTimer(r.svc.Watchdog)
		defer wdTimer.Stop()
		wd = wdTimer.C
	}
	for {
		select {
		case m := <-msgs:
			for _, line := range strings.Split(m, "\n") {
				switch line {
				case "READY=1":
					if r.svc.Ready == ReadyNotify {
						r.markReady(pid)
					}
				case "WATCHDOG=1":
					if wdTimer != nil {
						wdTimer.Reset(r.svc.Watchdog)
					}
				}
			}
		case <-settled:
			settled = nil
			r.markReady(pid)
		case <-tcpReady:
			tcpReady = nil
			r.markReady(pid)
		case <-wd:
			log.Warn("watchdog expired, killing", "pid", pid, "timeout", r.svc.Watchdog)
			r.sup.emit(Event{Service: r.svc.Name, Kind: EventWatchdog, PID: pid})
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			wd = nil
		case err := <-exited:
			r.sup.forget(pid)
			r.mu.Lock()
			r.proc = nil
			r.st.PID = 0
			r.st.Ready = false
			r.st.LastErr = err
			stopping := r.stopping
			if !stopping {
				r.st.Restarts++
			}
			r.mu.Unlock()
			if stopping {
				log.Info("stopped", "pid", pid, "status", errString(err))
				r.sup.emit(Event{Service: r.svc.Name, Kind: EventStopped, PID: pid, Err: err})
			} else {
				log.Warn("exited, restarting", "pid", pid, "status", errString(err))
				r.sup.emit(Event{Service: r.svc.Name, Kind: EventExited, PID: pid, Err: err})
			}
			return true
		}
	}
}

// stop terminates the service: SIGTERM to its process group, SIGKILL after
// timeout, and waits for the loop to end.
func (r *runner) stop(timeout time.Duration) {
	r.mu.Lock()
	r.stopping = true
	p := r.proc
	r.mu.Unlock()
	if p == nil {
		return // loop ends on its own once the context is cancelled
	}
	_ = syscall.Kill(-p.Pid, syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		r.mu.Lock()
		gone := r.proc == nil
		r.mu.Unlock()
		if gone {
			return
		}
		select {
		case <-t.C:
			r.sup.opts.Log.Warn("stop timeout, killing", "service", r.svc.Name, "pid", p.Pid)
			_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *runner) listen() (*net.UnixConn, error) {
	path := r.sockPath()
	_ = os.Remove(path)
	return net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
}

func readNotify(conn *net.UnixConn, out chan<- string) {
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return // closed by loop
		}
		select {
		case out <- string(buf[:n]):
		default: // nobody listening between runs; a message lost is re-sent
		}
	}
}

func probeTCP(ctx context.Context, addr string, ready chan<- struct{}) {
	d := net.Dialer{Timeout: time.Second}
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			close(ready)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
