// Package daemon is the container-management daemon: configuration (upstream
// flags and JSON keys), wiring of the containerd client, network and
// container manager, the local gRPC API, deployment at start and the things
// features.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kantofw/kanto/services/containers/ctrd"
	"github.com/kantofw/kanto/services/containers/metrics"
	"github.com/kantofw/kanto/services/containers/mgr"
	"github.com/kantofw/kanto/services/containers/model"
	"github.com/kantofw/kanto/services/containers/network"
	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/config"
	"github.com/kantofw/kanto/services/internal/lifecycle"
	"github.com/kantofw/kanto/services/internal/logging"
)

// LogBinaryName is the builtin the containerd shim runs as a task's log
// driver (a symlink to the kanto binary in the exec root).
const LogBinaryName = "container-management-log"

// Main is `kanto container-management`.
func Main(ctx context.Context, env *cli.Env, args []string) error {
	cfg := Defaults()
	fs := cli.NewFlagSet(env, env.Name)
	var cfgFile string
	cfg.RegisterFlags(fs, &cfgFile)
	if err := config.Load(fs, args, "cfg-file", &cfg); err != nil {
		if errors.Is(err, config.ErrNotFound) {
			// Upstream ignores a missing config file.
		} else if errors.Is(err, config.ErrInvalid) {
			return err
		} else {
			return cli.Usagef("%v", err)
		}
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected arguments %q", fs.Args())
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, closer, err := logging.New(logging.Config{
		LogFile: cfg.Log.File, LogLevel: cfg.Log.Level, LogFileSize: cfg.Log.FileSize,
		LogFileCount: cfg.Log.FileCount, LogFileMaxAge: cfg.Log.MaxAge,
	}, "container-management", env.Stderr)
	if err != nil {
		return err
	}
	defer closer.Close()
	// Upstream also stops on SIGHUP and SIGQUIT (SIGINT/SIGTERM come with ctx).
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGHUP, syscall.SIGQUIT)
	defer stop()
	d := &Daemon{cfg: cfg, log: log}
	return d.Run(ctx)
}

// Daemon is one running container-management service.
type Daemon struct {
	cfg Config
	log *slog.Logger
}

// New returns a daemon for cfg.
func New(cfg Config, log *slog.Logger) *Daemon { return &Daemon{cfg: cfg, log: log} }

// Run serves until ctx ends. Containers keep running after it returns.
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.cfg
	log := d.log
	notifier := lifecycle.NewNotifier(log)

	unlock, err := lockExecRoot(cfg.Manager.ExecRootDir)
	if err != nil {
		return err
	}
	defer unlock()

	logBin, err := installLogBinary(cfg.Manager.ExecRootDir)
	if err != nil {
		return err
	}
	regs := map[string]ctrd.RegistryConfig{}
	for host, r := range cfg.Containers.Registries {
		regs[host] = ctrd.RegistryConfig{
			User: r.Credentials.UserID, Password: r.Credentials.Password,
			RootCA: r.Transport.RootCA, ClientCert: r.Transport.ClientCert, ClientKey: r.Transport.ClientKey,
		}
	}
	rt, err := ctrd.New(ctx, ctrd.Config{
		Address: cfg.Containers.AddressPath, Namespace: cfg.Containers.DefaultNS, LeaseID: cfg.Containers.LeaseID,
		Runtime: cfg.Containers.RuncRuntime, Insecure: cfg.Containers.InsecureRegistries, Registries: regs,
		LogBinary: logBin, FIFODir: filepath.Join(cfg.Containers.ExecRootDir, "fifo"),
	}, log.With("component", "ctrd"))
	if err != nil {
		return err
	}
	defer rt.Close()

	br := cfg.Network.DefaultBridge
	nm, err := network.New(network.Config{
		Bridge: br.Name, Subnet: br.Subnet(), MTU: br.MTU, IPMasq: br.IPMasq,
		PluginDir: cfg.Network.CNIPluginDir,
		DataDir:   filepath.Join(cfg.Network.HomeDir, "network"),
		NetNSDir:  filepath.Join(cfg.Network.ExecRootDir, "netns"),
	}, log.With("component", "network"))
	if err != nil {
		return err
	}
	m, err := mgr.New(ctx, mgr.Config{
		HomeDir:       cfg.Manager.HomeDir,
		ContainersDir: filepath.Join(cfg.Containers.HomeDir, "containers"),
		StopTimeout:   time.Duration(cfg.Manager.StopTimeout),
		OOMKilled: func(id string) bool {
			return metrics.Reader{}.OOMKilled("/" + cfg.Containers.DefaultNS + "/" + id)
		},
	}, rt, nm, log.With("component", "manager"))
	if err != nil {
		return err
	}
	defer m.Close()

	// OOM events: owned by Run, ends with ctx; resubscribes when the event
	// stream breaks (containerd restarted).
	go func() {
		for ctx.Err() == nil {
			for id := range rt.OOMEvents(ctx) {
				m.OnOOM(id)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	m.Restore(ctx)

	lis, err := listen(cfg.GRPCServer.Protocol, cfg.GRPCServer.AddressPath)
	if err != nil {
		return err
	}
	srv := newGRPCServer(m, rt)
	serveErr := make(chan error, 1)
	// Owned by Run: ends when srv stops.
	go func() { serveErr <- srv.Serve(lis) }()

	if cfg.Deployment.Enable {
		if err := checkDeployDir(cfg.Deployment.CtrDir); err != nil {
			srv.Stop()
			return err
		}
		// Owned by Run: stops between descriptors once ctx ends; Run waits.
		deployed := make(chan struct{})
		go func() {
			defer close(deployed)
			if err := Deploy(ctx, m, cfg.Deployment, log.With("component", "deployment")); err != nil {
				log.Error("deployment", "err", err)
			}
		}()
		defer func() { <-deployed }()
	}
	if !cfg.Containers.ImageExpiryDisable && cfg.Containers.ImageExpiry > 0 {
		// Owned by Run: ends with ctx.
		go expireImages(ctx, rt, m, time.Duration(cfg.Containers.ImageExpiry), log.With("component", "images"))
	}
	if cfg.UpdateAgt.Enable {
		stopAgent, err := startUpdateAgent(ctx, cfg, log.With("component", "update-agent"))
		if err != nil {
			srv.Stop()
			return err
		}
		defer stopAgent()
	}
	if cfg.Things.Enable {
		stopThings := startThings(ctx, cfg, m, rt, log.With("component", "things"))
		defer stopThings()
	}

	log.Info("container management ready", "address", cfg.GRPCServer.AddressPath, "version", Version)
	notifier.Ready("serving " + cfg.GRPCServer.AddressPath)
	go notifier.Watchdog(ctx, nil)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err != nil {
			return fmt.Errorf("grpc server: %w", err)
		}
	}
	notifier.Stopping()
	log.Info("stopping; containers keep running")
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		srv.Stop()
	}
	// The bridge and the empty top-level port chains go with the daemon
	// when no container uses them; bridged containers that keep running
	// (live restore) keep them.
	if !bridgeInUse(m.List()) {
		if err := nm.Cleanup(); err != nil {
			log.Warn("network cleanup", "err", err)
		}
	}
	return nil
}

// bridgeInUse reports whether a container is attached to the bridge: in
// bridge mode and with a network namespace (running, paused, restarting).
func bridgeInUse(cs []*model.Container) bool {
	for _, c := range cs {
		if c.HostConfig == nil || c.HostConfig.NetworkMode != model.NetworkBridge || c.State == nil {
			continue
		}
		if c.State.Running || c.State.Paused || c.State.Restarting {
			return true
		}
	}
	return false
}

// lockExecRoot takes the single-instance lock, as upstream.
func lockExecRoot(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another instance of container management is already running (lock %s): %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// installLogBinary links the running kanto binary into the exec root under
// the log driver's name; the multi-call binary dispatches on that name.
func installLogBinary(execRoot string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if p := os.Getenv("KANTO_CM_LOG_BINARY"); p != "" {
		exe = p // tests running the daemon in-process point at a built kanto
	}
	dir := filepath.Join(execRoot, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	link := filepath.Join(dir, LogBinaryName)
	tmp := link + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(exe, tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, link); err != nil {
		return "", err
	}
	return link, nil
}

func listen(proto, addr string) (net.Listener, error) {
	if strings.HasPrefix(proto, "unix") {
		if err := os.MkdirAll(filepath.Dir(addr), 0o755); err != nil {
			return nil, err
		}
		if err := os.Remove(addr); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	l, err := net.Listen(proto, addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s %s: %w", proto, addr, err)
	}
	return l, nil
}

// expireImages removes the images no container uses once they are older
// than expiry: at start, then every hour (upstream also checks after each
// removal; an hourly sweep bounds the delay instead).
func expireImages(ctx context.Context, rt *ctrd.Client, m *mgr.Manager, expiry time.Duration, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		removed, err := rt.PruneOlder(ctx, m.ImagesInUse(), time.Now().Add(-expiry))
		if err != nil && ctx.Err() == nil {
			log.Warn("image expiry", "err", err)
		}
		for _, r := range removed {
			log.Info("expired image removed", "image", r)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
