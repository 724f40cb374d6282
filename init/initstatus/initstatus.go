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

// Status is the whole file.
type Status struct {
	Slot       string             `json:"slot"`
	ServicesUp bool               `json:"servicesUp"`
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
