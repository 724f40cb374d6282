// Package ctrd runs the containers of the container-management service on
// containerd: images (pull, import, GC), snapshots, OCI specs, tasks, exit
// and OOM events, metrics. It knows nothing of the daemon's config file or
// of the gRPC API; the daemon turns its config into a Config.
//
// Objects it owns in containerd, all in namespace Config.Namespace:
//
//	lease      Config.LeaseID (no expiry) holding the per-container snapshots
//	snapshot   <id>-snapshot (overlayfs), prepared at create, removed at remove
//	container  <id>, task <id>: exist only while the container runs
//
// Container output goes to a logging binary started by the containerd shim
// (binary:// log URI), so output keeps being written while the daemon is
// down and containers survive a daemon restart.
package ctrd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/leases"
	"github.com/containerd/containerd/namespaces"
)

// Sentinel categories.
var (
	// ErrImage: the image cannot be resolved, pulled or unpacked.
	ErrImage = errors.New("image error")
	// ErrNotRunning: there is no task for the container.
	ErrNotRunning = errors.New("no running task")
)

// RegistryConfig is how one registry host is reached.
type RegistryConfig struct {
	User, Password string
	// RootCA, ClientCert, ClientKey are PEM file paths; empty means the
	// system roots and no client certificate.
	RootCA, ClientCert, ClientKey string
}

// Config configures the client.
type Config struct {
	Address     string
	Namespace   string
	LeaseID     string
	Snapshotter string // default overlayfs
	// Runtime is the runc runtime every runc-like container runtime is
	// mapped to (io.containerd.runc.v2 by default).
	Runtime string
	// Insecure lists registry hosts reached over plain HTTP or TLS without
	// verification.
	Insecure   []string
	Registries map[string]RegistryConfig
	// LogBinary is the absolute path of the logging binary the shim runs for
	// each task (the kanto binary under the name container-management-log).
	LogBinary string
	// FIFODir holds the FIFOs of interactive tasks.
	FIFODir string
}

// Client is the containerd side of the service. Safe for concurrent use.
type Client struct {
	cfg Config
	c   *containerd.Client
	log *slog.Logger

	mu  sync.Mutex
	ios map[string]cio.IO // interactive tasks' IO, closed at Cleanup
}

// New connects to containerd and makes sure the lease exists.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Client, error) {
	if cfg.Snapshotter == "" {
		cfg.Snapshotter = "overlayfs"
	}
	if cfg.Runtime == "" {
		cfg.Runtime = "io.containerd.runc.v2"
	}
	c, err := containerd.New(cfg.Address, containerd.WithDefaultNamespace(cfg.Namespace), containerd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", cfg.Address, err)
	}
	cl := &Client{cfg: cfg, c: c, log: log, ios: map[string]cio.IO{}}
	ctx = cl.nsCtx(ctx)
	lm := c.LeasesService()
	ls, err := lm.List(ctx, fmt.Sprintf("id==%s", cfg.LeaseID))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("list leases: %w", err)
	}
	if len(ls) == 0 {
		if _, err := lm.Create(ctx, leases.WithID(cfg.LeaseID)); err != nil && !errdefs.IsAlreadyExists(err) {
			c.Close()
			return nil, fmt.Errorf("create lease: %w", err)
		}
	}
	return cl, nil
}

// Close releases the connection; running containers are not touched.
func (c *Client) Close() error { return c.c.Close() }

// Raw returns the containerd client (for tests and metrics).
func (c *Client) Raw() *containerd.Client { return c.c }

func (c *Client) nsCtx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, c.cfg.Namespace)
}

func (c *Client) leaseCtx(ctx context.Context) context.Context {
	return leases.WithLease(c.nsCtx(ctx), c.cfg.LeaseID)
}

// Version returns containerd's version.
func (c *Client) Version(ctx context.Context) (string, error) {
	v, err := c.c.Version(ctx)
	return v.Version, err
}

// categorized is err, also matching kind with errors.Is, whose message is
// err's alone (clients see the containerd or registry message as is).
type categorized struct{ kind, err error }

func (c *categorized) Error() string   { return c.err.Error() }
func (c *categorized) Unwrap() []error { return []error{c.kind, c.err} }

func imageErr(format string, args ...any) error {
	return &categorized{kind: ErrImage, err: fmt.Errorf(format, args...)}
}
