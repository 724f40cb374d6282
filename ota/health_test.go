package ota

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

type fakeServices map[string]*atomic.Bool

func (f fakeServices) ServiceActive(_ context.Context, name string) (bool, error) {
	b, ok := f[name]
	if !ok {
		return false, errors.New("no such service " + name)
	}
	return b.Load(), nil
}

type fakeCloud struct{ up atomic.Bool }

func (f *fakeCloud) Connected() bool { return f.up.Load() }

func TestServicesUp(t *testing.T) {
	a, b := &atomic.Bool{}, &atomic.Bool{}
	a.Store(true)
	svc := fakeServices{"a": a, "b": b}
	c := &servicesUp{st: svc, names: []string{"a", "b"}, every: time.Millisecond}
	go func() { time.Sleep(5 * time.Millisecond); b.Store(true) }()
	if err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.Run(ctx); err == nil {
		t.Fatal("b is down but the check passed")
	}
	c.names = []string{"zzz"}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if err := c.Run(ctx2); err == nil {
		t.Fatal("unknown service passed")
	}
}

func TestCloudConnected(t *testing.T) {
	f := &fakeCloud{}
	c := &cloudConnected{c: f, within: 30 * time.Millisecond, every: time.Millisecond}
	if err := c.Run(context.Background()); err == nil {
		t.Fatal("never connected but passed")
	}
	f.up.Store(true)
	c.within = time.Hour
	if err := c.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestScripts(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("10-ok", "exit 0", 0o755)
	write("20-fail", "echo broken >&2; exit 3", 0o755)
	write("30-hang", "sleep 60", 0o755)
	write("README", "not executable", 0o644)
	checks, err := ScriptsDir(dir, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) != 3 {
		t.Fatalf("%d checks", len(checks))
	}
	if err := checks[0].Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := checks[1].Run(context.Background()); err == nil {
		t.Fatal("exit 3 passed")
	}
	// Without the timeout the script would exit 0 after 60 s.
	if err := checks[2].Run(context.Background()); err == nil {
		t.Fatal("hanging script passed")
	}
	err = RunChecks(context.Background(), checks[:2], time.Minute)
	if !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("RunChecks: %v", err)
	}
	if none, _ := ScriptsDir(filepath.Join(dir, "missing"), time.Second); len(none) != 0 {
		t.Fatal("missing dir gave checks")
	}
}
