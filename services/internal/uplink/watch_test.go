package uplink

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
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
