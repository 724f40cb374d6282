// Package initstatus publishes the state of the init's services in a file
// (/run/kanto-init/status.json) and reads it back, so that programs running
// under the init — above all the OTA agent's "services up" health check —
// can ask whether a service is active without talking to PID 1.
package initstatus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Path is where the image's init writes the status.
const Path = "/run/kanto-init/status.json"

// ErrUnknownService: the init does not run a service of that name.
var ErrUnknownService = errors.New("unknown service")

// Service is one service's state.
type Service struct {
	PID      int  `json:"pid"`
	Ready    bool `json:"ready"`
	Restarts int  `json:"restarts"`
}

// Health verdicts of the init (Status.Health).
const (
	HealthPending   = ""          // still waiting for the services
	HealthHealthy   = "healthy"   // every service came up and stayed up
	HealthUnhealthy = "unhealthy" // see Status.Reason
)

// Status is the whole file.
type Status struct {
	Slot       string             `json:"slot"`
	ServicesUp bool               `json:"servicesUp"`
	Health     string             `json:"health,omitempty"`
	Reason     string             `json:"reason,omitempty"`
	Services   map[string]Service `json:"services"`
	Updated    time.Time          `json:"updated"`
}

// Write replaces the file at path atomically.
func Write(path string, st Status) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Read reads the file at path.
func Read(path string) (Status, error) {
	var st Status
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// Reader answers service queries from the status file. Its ServiceActive
// has the contract of ota.ServiceStatus: an unknown service is an error,
// not "down".
type Reader struct {
	Path string // default Path
}

// ServiceActive reports whether the named service runs and is ready.
func (r Reader) ServiceActive(_ context.Context, name string) (bool, error) {
	p := r.Path
	if p == "" {
		p = Path
	}
	st, err := Read(p)
	if err != nil {
		return false, err
	}
	s, ok := st.Services[name]
	if !ok {
		return false, fmt.Errorf("%q: %w", name, ErrUnknownService)
	}
	return s.PID != 0 && s.Ready, nil
}

// WaitHealth waits for the init's verdict on this boot: nil when healthy,
// an error wrapping ErrUnhealthy with the reason otherwise. It polls the
// status file until ctx ends. The OTA agent runs it as a health check
// (kanto-init installed as /etc/kanto/firmware/health.d/50-init-health),
// so that the agent and the init judge a trial boot the same way.
func WaitHealth(ctx context.Context, path string) error {
	if path == "" {
		path = Path
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		if st, err := Read(path); err == nil {
			switch st.Health {
			case HealthHealthy:
				return nil
			case HealthUnhealthy:
				return fmt.Errorf("%s: %w", st.Reason, ErrUnhealthy)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no health verdict from the init: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// ErrUnhealthy: the init found this boot unhealthy.
var ErrUnhealthy = errors.New("unhealthy boot")
