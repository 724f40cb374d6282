package ota

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ErrUnhealthy: a health check failed.
var ErrUnhealthy = errors.New("health check failed")

// HealthCheck decides whether a freshly booted slot is good. Run returns nil
// when healthy; it should return promptly when ctx is done. Checks run one
// after the other, so a check need not be safe for concurrent use.
type HealthCheck interface {
	Name() string
	Run(ctx context.Context) error
}

// ServiceStatus reports whether a service is up. The init of the image and
// systemd (SystemdServices) both implement it. An unknown service is an
// error, not "down".
type ServiceStatus interface {
	ServiceActive(ctx context.Context, name string) (bool, error)
}

// CloudStatus reports whether the device is connected to its cloud
// backend; the connector implements it.
type CloudStatus interface {
	Connected() bool
}

// poll runs ok until it reports true or ctx ends.
func poll(ctx context.Context, every time.Duration, ok func() (bool, error)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		done, err := ok()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return err
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

type servicesUp struct {
	st    ServiceStatus
	names []string
	every time.Duration
}

// ServicesUp passes once every named service is active (polled every
// second until the check's context ends).
func ServicesUp(st ServiceStatus, names ...string) HealthCheck {
	return &servicesUp{st: st, names: names, every: time.Second}
}

func (s *servicesUp) Name() string { return "services-up(" + strings.Join(s.names, ",") + ")" }

func (s *servicesUp) Run(ctx context.Context) error {
	var down []string
	err := poll(ctx, s.every, func() (bool, error) {
		down = down[:0]
		for _, n := range s.names {
			ok, err := s.st.ServiceActive(ctx, n)
			if err != nil {
				return false, err
			}
			if !ok {
				down = append(down, n)
			}
		}
		return len(down) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("services not active %v: %w", down, err)
	}
	return nil
}

type cloudConnected struct {
	c      CloudStatus
	within time.Duration
	every  time.Duration
}

// CloudConnected passes once the device is connected to the cloud, and
// fails if that takes longer than within.
func CloudConnected(c CloudStatus, within time.Duration) HealthCheck {
	return &cloudConnected{c: c, within: within, every: 500 * time.Millisecond}
}

func (c *cloudConnected) Name() string { return fmt.Sprintf("cloud-connected(%s)", c.within) }

func (c *cloudConnected) Run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.within)
	defer cancel()
	if err := poll(ctx, c.every, func() (bool, error) { return c.c.Connected(), nil }); err != nil {
		return fmt.Errorf("not connected within %s: %w", c.within, err)
	}
	return nil
}

type script struct {
	path    string
	timeout time.Duration
}

// Script runs an executable; exit status 0 is healthy. It is killed (with
// its process group) after timeout.
func Script(path string, timeout time.Duration) HealthCheck {
	return &script{path: path, timeout: timeout}
}

// ScriptsDir returns a Script check for every executable in dir, in name
// order; a missing dir gives none.
func ScriptsDir(dir string, timeout time.Duration) ([]HealthCheck, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []HealthCheck
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode()&0o111 == 0 {
			continue
		}
		out = append(out, Script(filepath.Join(dir, e.Name()), timeout))
	}
	slices.SortFunc(out, func(a, b HealthCheck) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

func (s *script) Name() string { return "script(" + s.path + ")" }

func (s *script) Run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.path)
	killGroupOnCancel(cmd)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 512 {
			msg = msg[len(msg)-512:]
		}
		return fmt.Errorf("%s: %w: %s", s.path, err, msg)
	}
	return nil
}

// CheckFunc adapts a function to HealthCheck.
type CheckFunc struct {
	CheckName string
	Fn        func(ctx context.Context) error
}

// Name implements HealthCheck.
func (c CheckFunc) Name() string { return c.CheckName }

// Run implements HealthCheck.
func (c CheckFunc) Run(ctx context.Context) error { return c.Fn(ctx) }

// SystemdServices asks systemctl whether units are active.
type SystemdServices struct{}

// ServiceActive implements ServiceStatus.
func (SystemdServices) ServiceActive(ctx context.Context, name string) (bool, error) {
	out, err := exec.CommandContext(ctx, "systemctl", "is-active", name).Output()
	state := strings.TrimSpace(string(out))
	if state == "active" {
		return true, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return false, nil // inactive, failed, activating
	}
	return false, err
}

// RunChecks runs checks in order within timeout; all must pass.
func RunChecks(ctx context.Context, checks []HealthCheck, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var errs []error
	for _, c := range checks {
		if err := c.Run(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name(), err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrUnhealthy, errors.Join(errs...))
	}
	return nil
}
