package uplink

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kantofw/kanto/services/internal/logging"
)

// Each way the file can change (written, renamed away, renamed back,
// removed) is reported; the directory is created when missing; Close
// leaves no goroutine behind.
func TestWatchProvisioning(t *testing.T) {
	if _, err := WatchProvisioning("", 0, nil); !errors.Is(err, ErrNoProvisioningFile) {
		t.Fatalf("empty path: %v", err)
	}
	before := runtime.NumGoroutine()
	dir := filepath.Join(t.TempDir(), "not", "yet")
	path := filepath.Join(dir, "provisioning.json")
	w, err := WatchProvisioning(path, 10*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	await := func(what string) {
		t.Helper()
		select {
		case <-w.C:
		case <-time.After(time.Minute):
			t.Fatalf("no change reported after %s", what)
		}
	}
	for _, step := range []struct {
		what string
		do   func() error
	}{
		{"create", func() error { return os.WriteFile(path, []byte(`{}`), 0o600) }},
		{"write", func() error { return os.WriteFile(path, []byte(`{"hub":{}}`), 0o600) }},
		{"rename away", func() error { return os.Rename(path, path+".away") }},
		{"rename back", func() error { return os.Rename(path+".away", path) }},
		{"remove", func() error { return os.Remove(path) }},
	} {
		if err := step.do(); err != nil {
			t.Fatal(err)
		}
		await(step.what)
	}
	// A burst of writes is reported too (coalesced per tick).
	for i := range 5 {
		if err := os.WriteFile(path, []byte{byte('0' + i)}, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	await("five writes")
	w.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines left after Close", n-before)
	}
}

// TestRelaunch: each change cancels the running launch and waits for it
// before the next starts, with relaunch set; the end of ctx ends the loop
// after the launch has returned.
func TestRelaunch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan struct{})
	type start struct {
		relaunch bool
		ended    chan struct{}
	}
	starts := make(chan start, 3)
	var running atomic.Int32
	launch := func(ctx context.Context, relaunch bool) {
		if running.Add(1) != 1 {
			t.Error("two launches at once")
		}
		ended := make(chan struct{})
		starts <- start{relaunch, ended}
		<-ctx.Done()
		running.Add(-1)
		close(ended)
	}
	done := make(chan struct{})
	go func() { defer close(done); Relaunch(ctx, changes, launch, logging.Discard(), "p.json") }()
	first := <-starts
	changes <- struct{}{}
	second := <-starts
	select {
	case <-first.ended:
	default:
		t.Error("the second launch started before the first ended")
	}
	changes <- struct{}{}
	third := <-starts
	if first.relaunch || !second.relaunch || !third.relaunch {
		t.Errorf("relaunch flags %v %v %v, want false true true", first.relaunch, second.relaunch, third.relaunch)
	}
	cancel()
	<-done
	select {
	case <-third.ended:
	default:
		t.Error("Relaunch returned before the running launch ended")
	}
}
