package slot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kantofw/kanto/firmware/bootenv"
)

// Slot states of the status record.
const (
	StatusInstalling = "installing"
	StatusTrial      = "trial"
	StatusGood       = "good"
	StatusBad        = "bad"
)

// Status is what the device remembers about one slot group.
type Status struct {
	Status      string            `json:"status,omitempty"`
	Version     string            `json:"version,omitempty"`
	SHA256      map[string]string `json:"sha256,omitempty"`
	Size        map[string]int64  `json:"size,omitempty"`
	InstalledAt time.Time         `json:"installedAt,omitzero"`
	CommittedAt time.Time         `json:"committedAt,omitzero"`
	BootCount   int64             `json:"bootCount,omitempty"`
	Transaction string            `json:"transaction,omitempty"`
}

// StatusFile is the slot status record (<stateDir>/slot-status.json).
type StatusFile struct {
	Slots map[string]Status `json:"slots"`
}

// StatusPath is the record's path.
func (c *Config) StatusPath() string { return filepath.Join(c.StateDir, "slot-status.json") }

// LoadStatus reads the record; a missing one is empty.
func (c *Config) LoadStatus() (*StatusFile, error) {
	sf := &StatusFile{Slots: map[string]Status{}}
	data, err := os.ReadFile(c.StatusPath())
	if errors.Is(err, fs.ErrNotExist) {
		return sf, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, sf); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", c.StatusPath(), err, ErrConfig)
	}
	if sf.Slots == nil {
		sf.Slots = map[string]Status{}
	}
	return sf, nil
}

// UpdateStatus applies fn to the status of slot group name and replaces
// the record atomically.
func (c *Config) UpdateStatus(name string, fn func(s *Status)) error {
	sf, err := c.LoadStatus()
	if err != nil {
		return err
	}
	s := sf.Slots[name]
	fn(&s)
	sf.Slots[name] = s
	data, err := json.MarshalIndent(sf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.StateDir, 0o755); err != nil {
		return err
	}
	return bootenv.WriteFileAtomic(c.StatusPath(), append(data, '\n'), 0o644)
}
