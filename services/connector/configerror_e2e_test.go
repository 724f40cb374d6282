package connector_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/services/internal/kantotest"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// awaitExit waits for the connector process to end and returns its exit
// code. The deadline only guards against a hung test.
func (w *world) awaitExit() int {
	w.t.Helper()
	select {
	case <-w.exited:
	case <-time.After(time.Minute):
		w.t.Fatal("connector still running")
	}
	// Wait set ProcessState before exited was closed.
	return w.proc.ProcessState.ExitCode()
}

// retainedStatus subscribes with a fresh local client and returns the
// retained connection status the broker holds.
func (w *world) retainedStatus() mqtt.Message {
	w.t.Helper()
	return kantotest.Retained(ctxT(w.t), w.t, w.local.URL(), connectorStatus)
}

// Reference §1.3 and §2.7 step 3: when the provisioning file watcher cannot
// be set up, the connector sends CONFIG_ERROR and exits; upstream returns
// the error to main, which ends in log.Fatalf, so exit status 1.
func TestConfigErrorOnWatcherFailure(t *testing.T) {
	w := newWorld(t, worldOptions{})
	// The file's directory can neither be created nor watched: its parent
	// is a regular file.
	notDir := filepath.Join(w.dir, "not-a-dir")
	if err := os.WriteFile(notDir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.settings["provisioningFile"] = filepath.Join(notDir, "provisioning.json")
	w.start()
	w.awaitCause(0, "CONFIG_ERROR")
	if code := w.awaitExit(); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if n := w.adapter.Attempts(); n != 0 {
		t.Errorf("%d hub connect attempts, want none", n)
	}

	msgs := w.status.all()
	if got, want := causes(msgs), []string{"CONFIG_ERROR"}; !cmp.Equal(got, want) {
		t.Errorf("statuses %q, want %q", got, want)
	}
	m := msgs[0]
	if m.QoS != 1 {
		t.Errorf("status QoS %d, want 1", m.QoS)
	}
	var payload map[string]any
	if err := json.Unmarshal(m.Payload, &payload); err != nil {
		t.Fatalf("status %s: %v", m.Payload, err)
	}
	ts, ok := payload["timestamp"].(float64)
	// Unix seconds: not milliseconds, not zero.
	if !ok || ts <= 0 || ts > 1e11 {
		t.Errorf("status %s: timestamp is not Unix seconds", m.Payload)
	}
	delete(payload, "timestamp")
	if diff := cmp.Diff(map[string]any{"connected": false, "cause": "CONFIG_ERROR"}, payload); diff != "" {
		t.Errorf("status %s (-want +got):\n%s", m.Payload, diff)
	}

	// The connector left cleanly: the broker keeps CONFIG_ERROR, not the
	// last will.
	r := w.retainedStatus()
	if !r.Retained || string(r.Payload) != string(m.Payload) {
		t.Errorf("retained status %s (retained %v), want %s", r.Payload, r.Retained, m.Payload)
	}
}
