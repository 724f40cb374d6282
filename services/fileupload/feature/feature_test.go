package feature

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kantofw/kanto/services/fileupload/files"
	"github.com/kantofw/kanto/services/fileupload/providers"
	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/logging"
)

// recorder keeps what the feature publishes (the broker is tested end to
// end in package fileupload; here only the feature's own logic is).
type recorder struct {
	mu   sync.Mutex
	envs []*ditto.Envelope
}

func (r *recorder) Publish(_ context.Context, _ string, payload []byte) error {
	env, err := ditto.Parse(payload)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.envs = append(r.envs, env)
	r.mu.Unlock()
	return nil
}

func (r *recorder) states(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.envs {
		if strings.HasSuffix(e.Path, "/lastUpload") && strings.Contains(string(e.Value), `"correlationId":"`+id+`"`) {
			i := strings.Index(string(e.Value), `"state":"`)
			out = append(out, strings.SplitN(string(e.Value)[i+9:], `"`, 2)[0])
		}
	}
	return out
}

// blocking is an uploader that waits until released or canceled.
type blocking struct{ release chan struct{} }

func (b blocking) Upload(ctx context.Context, f *files.File, p providers.Progress) error {
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func runFeature(t *testing.T, cfg Config, up Uploader) (*Feature, *recorder, func()) {
	t.Helper()
	rec := &recorder{}
	f := New(cfg, Thing{Namespace: "ns", Name: "dev", TenantID: "t"}, rec,
		func(providers.Options) (Uploader, error) { return up, nil }, nil, logging.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	for {
		f.mu.Lock()
		ready := f.ctx != nil
		f.mu.Unlock()
		if ready {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return f, rec, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func testPolicy(t *testing.T) files.Policy {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.log"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	return files.Policy{Glob: filepath.Join(dir, "*.log"), Mode: files.Strict}
}

// TestUploadsBounded: triggers the backend never starts do not pile up.
func TestUploadsBounded(t *testing.T) {
	defer checkLeaks(t)()
	f, _, stop := runFeature(t, Config{Policy: testPolicy(t), StopTimeout: time.Second}, blocking{})
	defer stop()
	for range maxUploads + 50 {
		if err := f.doTrigger(TriggerRequest{}); err != nil {
			t.Fatal(err.err)
		}
	}
	f.mu.Lock()
	n, o := len(f.uploads), len(f.order)
	f.mu.Unlock()
	if n > maxUploads || o != n {
		t.Errorf("%d uploads (%d ordered), want at most %d", n, o, maxUploads)
	}
}

// TestShutdownWaitsThenCancels: at shutdown a running upload gets
// StopTimeout to finish, then it is CANCELED.
func TestShutdownWaitsThenCancels(t *testing.T) {
	for _, tc := range []struct {
		name    string
		release bool
		want    string
	}{
		{"finishes in time", true, "SUCCESS"},
		{"canceled after the timeout", false, "CANCELED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer checkLeaks(t)()
			up := blocking{release: make(chan struct{})}
			f, rec, stop := runFeature(t, Config{Policy: testPolicy(t), StopTimeout: 300 * time.Millisecond}, up)
			if err := f.doTrigger(TriggerRequest{CorrelationID: "x"}); err != nil {
				t.Fatal(err.err)
			}
			if err := f.start([]byte(`{"correlationId":"x#1"}`)); err != nil {
				t.Fatal(err.err)
			}
			if tc.release {
				go func() { time.Sleep(50 * time.Millisecond); close(up.release) }()
			}
			stop()
			got := rec.states("x")
			if len(got) == 0 || got[len(got)-1] != tc.want {
				t.Errorf("states %v, want last %s", got, tc.want)
			}
		})
	}
}

func TestErrorsFromStart(t *testing.T) {
	rec := &recorder{}
	f := New(Config{Policy: testPolicy(t)}, Thing{Namespace: "ns", Name: "dev"}, rec,
		func(o providers.Options) (Uploader, error) {
			return nil, errors.New("no provider")
		}, nil, logging.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for {
		f.mu.Lock()
		ready := f.ctx != nil
		f.mu.Unlock()
		if ready {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := f.doTrigger(TriggerRequest{CorrelationID: "y"}); err != nil {
		t.Fatal(err.err)
	}
	err := f.start([]byte(`{"correlationId":"y#1"}`))
	if err == nil || err.status != 500 || !strings.Contains(err.Error(), "no provider") {
		t.Errorf("got %v", err)
	}
}

// checkLeaks returns a func that fails the test when goroutines started
// since the call are still running (after letting them settle).
func checkLeaks(t *testing.T) func() {
	before := runtime.NumGoroutine()
	return func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines leaked:\n%s", n-before, buf[:runtime.Stack(buf, true)])
		}
	}
}
