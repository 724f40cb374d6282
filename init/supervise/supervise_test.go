package supervise

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The test binary doubles as the supervised program: with HELPER_MODE set,
// TestMain runs the helper instead of the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("HELPER_MODE"); mode != "" {
		helper(mode)
		return
	}
	os.Exit(m.Run())
}

func helper(mode string) {
	name := os.Getenv("HELPER_NAME")
	logf := os.Getenv("HELPER_LOG")
	record := func(what string) {
		f, err := os.OpenFile(logf, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%s %s\n", what, name)
			f.Close()
		}
	}
	notify := func(msg string) {
		c, err := net.Dial("unixgram", os.Getenv("NOTIFY_SOCKET"))
		if err == nil {
			c.Write([]byte(msg))
			c.Close()
		}
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	record("start")
	switch mode {
	case "crash-twice":
		n, _ := os.ReadFile(logf)
		if strings.Count(string(n), "start "+name) <= 2 {
			os.Exit(3)
		}
		notify("READY=1")
	case "notify":
		time.Sleep(50 * time.Millisecond) // readiness comes later than start
		notify("STATUS=up\nREADY=1")
	case "tcp":
		l, err := net.Listen("tcp", os.Getenv("HELPER_ADDR"))
		if err != nil {
			os.Exit(4)
		}
		defer l.Close()
	case "exit":
		os.Exit(1)
	case "silent": // never pings the watchdog
		notify("READY=1")
	}
	<-term
	record("stop")
}

func helperSvc(t *testing.T, name, mode, logf string, after ...string) Service {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Service{
		Name: name, Path: exe, After: after, Ready: ReadyNotify,
		Env: []string{"HELPER_MODE=" + mode, "HELPER_NAME=" + name, "HELPER_LOG=" + logf},
	}
}

func readLog(t *testing.T, logf string) []string {
	t.Helper()
	b, err := os.ReadFile(logf)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		svcs []Service
		want []string
		err  error
	}{
		{"empty", nil, []string{}, nil},
		{"independent keep input order", []Service{{Name: "b"}, {Name: "a"}}, []string{"b", "a"}, nil},
		{"chain reversed", []Service{{Name: "c", After: []string{"b"}}, {Name: "b", After: []string{"a"}}, {Name: "a"}}, []string{"a", "b", "c"}, nil},
		{"diamond", []Service{
			{Name: "app", After: []string{"conn", "twins"}},
			{Name: "twins", After: []string{"broker"}},
			{Name: "conn", After: []string{"broker"}},
			{Name: "broker"},
		}, []string{"broker", "twins", "conn", "app"}, nil},
		{"cycle", []Service{{Name: "a", After: []string{"b"}}, {Name: "b", After: []string{"a"}}, {Name: "c"}}, nil, ErrCycle},
		{"self", []Service{{Name: "a", After: []string{"a"}}}, nil, ErrCycle},
		{"unknown", []Service{{Name: "a", After: []string{"x"}}}, nil, ErrUnknown},
		{"duplicate", []Service{{Name: "a"}, {Name: "a"}}, nil, ErrDuplicate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Order(tc.svcs)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Order() error = %v, want %v", err, tc.err)
			}
			if tc.err == nil {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("Order() mismatch (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func run(t *testing.T, svcs []Service, opts Options) (*Supervisor, func()) {
	t.Helper()
	opts.RuntimeDir = t.TempDir()
	opts.MinBackoff = 10 * time.Millisecond
	s, err := New(svcs, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	return s, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	}
}

func waitReady(t *testing.T, s *Supervisor) {
	t.Helper()
	select {
	case <-s.AllReady():
	case <-time.After(30 * time.Second):
		t.Fatalf("services not ready: %+v", s.Status())
	}
}

func TestStartAndStopOrder(t *testing.T) {
	logf := filepath.Join(t.TempDir(), "log")
	svcs := []Service{
		helperSvc(t, "app", "notify", logf, "conn"),
		helperSvc(t, "conn", "notify", logf, "broker"),
		helperSvc(t, "broker", "notify", logf),
	}
	s, stop := run(t, svcs, Options{})
	waitReady(t, s)
	stop()
	want := []string{"start broker", "start conn", "start app", "stop app", "stop conn", "stop broker"}
	if diff := cmp.Diff(want, readLog(t, logf)); diff != "" {
		t.Errorf("start/stop order (-want +got):\n%s", diff)
	}
	for _, st := range s.Status() {
		if st.PID != 0 || st.Restarts != 0 {
			t.Errorf("after stop: %+v", st)
		}
	}
}

func TestRestartOnCrash(t *testing.T) {
	logf := filepath.Join(t.TempDir(), "log")
	var mu sync.Mutex
	var kinds []EventKind
	s, stop := run(t, []Service{helperSvc(t, "flaky", "crash-twice", logf)}, Options{
		OnEvent: func(e Event) { mu.Lock(); kinds = append(kinds, e.Kind); mu.Unlock() },
	})
	waitReady(t, s)
	st := s.Status()[0]
	stop()
	if st.Restarts != 2 || !st.Ready || st.PID == 0 {
		t.Errorf("status = %+v, want 2 restarts, ready, running", st)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []EventKind{EventStarted, EventExited, EventStarted, EventExited, EventStarted, EventReady, EventStopped}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestTCPReadiness(t *testing.T) {
	logf := filepath.Join(t.TempDir(), "log")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	broker := helperSvc(t, "broker", "tcp", logf)
	broker.Ready, broker.ReadyAddr = ReadyTCP, addr
	broker.Env = append(broker.Env, "HELPER_ADDR="+addr)
	s, stop := run(t, []Service{helperSvc(t, "conn", "notify", logf, "broker"), broker}, Options{})
	waitReady(t, s)
	stop()
	got := readLog(t, logf)
	if got[0] != "start broker" || got[1] != "start conn" {
		t.Errorf("log = %v, want broker started before conn", got)
	}
}

func TestWatchdogRestarts(t *testing.T) {
	logf := filepath.Join(t.TempDir(), "log")
	svc := helperSvc(t, "silent", "silent", logf)
	svc.Watchdog = 200 * time.Millisecond
	fired := make(chan struct{}, 8)
	s, stop := run(t, []Service{svc}, Options{OnEvent: func(e Event) {
		if e.Kind == EventWatchdog {
			fired <- struct{}{}
		}
	}})
	defer stop()
	waitReady(t, s)
	select {
	case <-fired:
	case <-time.After(30 * time.Second):
		t.Fatal("watchdog never fired")
	}
}

// A "started" service that dies at once never counts as ready.
func TestStartedNeedsToSettle(t *testing.T) {
	logf := filepath.Join(t.TempDir(), "log")
	svc := helperSvc(t, "dies", "exit", logf)
	svc.Ready = ReadyStarted
	s, stop := run(t, []Service{svc}, Options{StartedSettle: 300 * time.Millisecond})
	defer stop()
	select {
	case <-s.AllReady():
		t.Fatalf("crash-looping service became ready: %+v", s.Status())
	case <-time.After(time.Second):
	}
	if st := s.Status()[0]; st.Restarts == 0 {
		t.Errorf("status = %+v, want restarts", st)
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		svc  Service
	}{
		{"tcp without address", Service{Name: "a", Ready: ReadyTCP}},
		{"unknown readiness", Service{Name: "a", Ready: "dbus"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New([]Service{tc.svc}, Options{}); !errors.Is(err, ErrUnknown) {
				t.Errorf("New() error = %v, want ErrUnknown", err)
			}
		})
	}
}
