package pid1

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/init/event"
	"github.com/kantofw/kanto/init/initcfg"
	"github.com/kantofw/kanto/init/initstatus"
	"github.com/kantofw/kanto/init/supervise"
	"github.com/u-root/u-root/pkg/watchdog"
	"golang.org/x/sys/unix"
)

// Files of the slot the init reads besides its configuration.
const (
	// ReleaseFile holds the slot's version (one line).
	ReleaseFile = "/etc/kanto/release"
	// IdentityFile is the provisioned identity on the data partition
	// (written by `kanto image provision`); only "deviceId" is read here.
	IdentityFile = "/data/kanto/provisioning/identity.json"
)

// Action is what PID 1 does when it stops.
type Action string

// Actions.
const (
	ActionReboot   Action = "reboot"
	ActionPowerOff Action = "poweroff"
)

// Signals that ask PID 1 to stop, as with busybox init: SIGTERM (and
// Ctrl-Alt-Del's SIGINT) reboot, SIGUSR2 powers off. A power key (see
// watchPowerKeys) powers off too.
var stopSignals = map[os.Signal]Action{
	unix.SIGTERM: ActionReboot,
	unix.SIGINT:  ActionReboot,
	unix.SIGUSR2: ActionPowerOff,
}

// Stage2 is PID 1 in the slot. It never returns: it ends with reboot(2).
func Stage2(log *slog.Logger, con *Console) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGUSR2)
	// Ctrl-Alt-Del sends SIGINT to PID 1 instead of rebooting at once.
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)

	ctx, cancel := context.WithCancel(context.Background())
	s := &system{log: log, con: con, children: map[int]bool{}, power: make(chan struct{}, 1)}
	actionCh := make(chan Action, 1)
	go func() { // owned by Stage2; ends when a stop is requested
		select {
		case sig := <-sigs:
			actionCh <- stopSignals[sig]
		case a := <-s.selfStop():
			actionCh <- a
		case <-s.power:
			actionCh <- ActionPowerOff
		}
	}()
	if err := s.start(ctx); err != nil {
		log.Error("init failed", "err", err)
		con.Event(event.Fatal, "err", err.Error())
		// A slot that cannot start is as bad as a failing health check.
		s.requestStop(ActionReboot, 5*time.Second)
	}
	action := <-actionCh
	con.Event(event.Shutdown, "action", string(action))
	cancel()
	s.wg.Wait()
	s.teardown()
	cmd := unix.LINUX_REBOOT_CMD_RESTART
	if action == ActionPowerOff {
		cmd = unix.LINUX_REBOOT_CMD_POWER_OFF
	}
	_ = unix.Reboot(cmd)
	select {} // not reached
}

// system is the running PID 1's state.
type system struct {
	log *slog.Logger
	con *Console
	cfg *initcfg.Config
	cmd initcfg.Cmdline
	sup *supervise.Supervisor
	wg  sync.WaitGroup // goroutines that must end before teardown

	mu       sync.Mutex
	children map[int]bool // processes the init itself waits for
	mounts   []string     // mounted by the config, in order
	up       bool         // every service has been ready
	verdict  string       // initstatus health verdict
	reason   string
	stop     chan Action
	stopOnce sync.Once
	power    chan struct{} // a power key was pressed
}

func (s *system) selfStop() chan Action {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop == nil {
		s.stop = make(chan Action, 1)
	}
	return s.stop
}

// requestStop asks Stage2 to stop after delay.
func (s *system) requestStop(a Action, delay time.Duration) {
	ch := s.selfStop()
	s.stopOnce.Do(func() {
		time.AfterFunc(delay, func() { ch <- a })
	})
}

func (s *system) owned(pid int) bool {
	if s.sup != nil && s.sup.Owns(pid) {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.children[pid]
}

func (s *system) start(ctx context.Context) error {
	if err := mountBasics(true); err != nil {
		s.log.Warn("basic mounts", "err", err)
	}
	for _, dev := range watchPowerKeys(s.log, "/dev/input/event*", s.power) {
		s.con.Event(event.PowerKey, "device", dev)
	}
	cfg, err := initcfg.Load(initcfg.Path)
	if err != nil {
		return err
	}
	s.cfg = cfg
	raw, _ := os.ReadFile("/proc/cmdline")
	s.cmd = initcfg.ParseCmdline(string(raw))
	version := "unknown"
	if b, err := os.ReadFile(ReleaseFile); err == nil {
		version = strings.TrimSpace(string(b))
	}
	s.con.Event(event.Init, "slot", s.cmd.Slot, "version", version)
	if cfg.Hostname != "" {
		_ = unix.Sethostname([]byte(cfg.Hostname))
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); reapOrphans(ctx, s.owned, 2*time.Second) }()
	if cfg.Watchdog.Device != "" {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.feedWatchdog(ctx) }()
	}
	for _, m := range cfg.Mounts {
		if err := s.mount(ctx, m); err != nil {
			if !m.Optional {
				return err
			}
			s.log.Warn("optional mount failed", "path", m.Path, "err", err)
		}
	}
	for _, d := range cfg.Dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			s.log.Warn("mkdir", "dir", d, "err", err)
		}
	}
	if id := readDeviceID(); id != "" {
		s.con.Event(event.Identity, "device", id)
	}
	addr, via, err := netUp(ctx, s.log, cfg.Network)
	if err != nil {
		s.log.Error("network", "err", err) // services may still work locally
	} else {
		s.con.Event(event.NetUp, "addr", addr, "via", via)
	}
	sup, err := supervise.New(cfg.SupervisedServices(), supervise.Options{
		Log:        s.log,
		RuntimeDir: "/run/kanto-init",
		Output:     func(name string) io.Writer { return s.con.Prefixed(name) },
		Env:        []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/data", "TZ=UTC"},
		OnEvent: func(e supervise.Event) {
			if e.Kind == supervise.EventReady {
				s.con.Event(event.ServiceReady, "name", e.Service)
			}
			s.publish(false)
		},
	})
	if err != nil {
		return err
	}
	_ = os.MkdirAll("/run/kanto-init", 0o755)
	s.sup = sup
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _ = sup.Run(ctx) }()
	go func() { defer s.wg.Done(); s.health(ctx) }()
	return nil
}

// publish writes the services' state for the OTA agent (initstatus).
func (s *system) publish(up bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if up {
		s.up = true
	}
	st := initstatus.Status{Slot: s.cmd.Slot, ServicesUp: s.up, Health: s.verdict, Reason: s.reason,
		Services: map[string]initstatus.Service{}, Updated: time.Now()}
	if s.sup != nil {
		for _, x := range s.sup.Status() {
			st.Services[x.Name] = initstatus.Service{PID: x.PID, Ready: x.Ready, Restarts: x.Restarts}
		}
	}
	if err := initstatus.Write(initstatus.Path, st); err != nil {
		s.log.Warn("status file", "err", err)
	}
}

func (s *system) mount(ctx context.Context, m initcfg.Mount) error {
	dev, err := resolveDevice(ctx, m.Device, 10*time.Second)
	if err != nil {
		return err
	}
	var flags uintptr = unix.MS_NOATIME
	if m.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(dev, m.Path, m.FSType, flags, m.Options); err != nil {
		return fmt.Errorf("mount %s on %s: %w", dev, m.Path, err)
	}
	s.mu.Lock()
	s.mounts = append(s.mounts, m.Path)
	s.mu.Unlock()
	s.con.Event(event.Mounted, "path", m.Path, "dev", dev)
	return nil
}

// health waits for every service, runs the health command and commits or
// rolls back (see initcfg.Health and Decide).
func (s *system) health(ctx context.Context) {
	h := s.cfg.Health
	reason := ""
	t := time.NewTimer(time.Duration(h.TimeoutSec) * time.Second)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-s.sup.AllReady():
		s.publish(true)
		s.con.Event(event.ServicesUp, "slot", s.cmd.Slot, "services", fmt.Sprint(len(s.cfg.Services)))
		before := s.sup.Status()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(h.SettleSec) * time.Second):
		}
		if bad := Unstable(before, s.sup.Status()); bad != "" {
			reason = "unstable: " + bad
		}
	case <-t.C:
		var missing []string
		for _, st := range s.sup.Status() {
			if !st.Ready {
				missing = append(missing, st.Name)
			}
		}
		reason = "not ready: " + strings.Join(missing, ",")
	}
	if reason == "" && len(h.Command) > 0 {
		if err := s.run(ctx, h.Command, time.Duration(h.TimeoutSec)*time.Second); err != nil {
			reason = "health command: " + err.Error()
		}
	}
	s.mu.Lock()
	s.verdict, s.reason = initstatus.HealthHealthy, reason
	if reason != "" {
		s.verdict = initstatus.HealthUnhealthy
	}
	s.mu.Unlock()
	s.publish(false)
	var scheme bootScheme = bootenv.NewGrubScheme(bootenv.NewGrubEnv(h.GrubEnv))
	st, stErr := scheme.State()
	if stErr != nil {
		s.log.Warn("boot environment", "err", stErr)
	}
	switch out := Decide(reason == "", s.cmd.Slot, st, stErr); out {
	case OutcomeCommit:
		s.con.Event(event.Healthy, "slot", s.cmd.Slot, "trial", "true")
		if h.Commit != "builtin" {
			return // the OTA agent commits
		}
		if err := scheme.Commit(s.cmd.Slot); err != nil {
			s.log.Error("commit", "slot", s.cmd.Slot, "err", err)
			return
		}
		unix.Sync()
		s.con.Event(event.Committed, "slot", s.cmd.Slot)
	case OutcomeGood:
		s.con.Event(event.Healthy, "slot", s.cmd.Slot, "trial", "false")
	case OutcomeRollback:
		s.con.Event(event.Unhealthy, "slot", s.cmd.Slot, "reason", reason, "action", "reboot")
		s.requestStop(ActionReboot, time.Duration(h.RebootDelaySec)*time.Second)
	case OutcomeReport:
		s.con.Event(event.Unhealthy, "slot", s.cmd.Slot, "reason", reason, "action", "none")
	}
}

// run runs a command to completion, registering it so the orphan reaper
// leaves it alone.
func (s *system) run(ctx context.Context, argv []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Stdout, c.Stderr = s.con.Prefixed("health"), s.con.Prefixed("health")
	s.mu.Lock()
	err := c.Start()
	if err == nil {
		s.children[c.Process.Pid] = true
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	err = c.Wait()
	s.mu.Lock()
	delete(s.children, c.Process.Pid)
	s.mu.Unlock()
	return err
}

func (s *system) feedWatchdog(ctx context.Context) {
	w := s.cfg.Watchdog
	var wd *watchdog.Watchdog
	var err error
	for range 50 { // the driver may still be probing
		if wd, err = watchdog.Open(w.Device); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.log.Warn("watchdog", "device", w.Device, "err", err)
		return
	}
	// Not wd.SetTimeout: u-root v0.16 hands WDIOC_SETTIMEOUT a pointer to
	// a time.Duration (int64 nanoseconds) where the kernel reads an int of
	// seconds, so i6300esb and others refuse it. The driver may round the
	// value, so feed by what it reports back.
	fd := int(wd.Fd())
	set := "true"
	if err := unix.IoctlSetPointerInt(fd, unix.WDIOC_SETTIMEOUT, w.TimeoutSec); err != nil {
		set = "false"
		s.log.Info("watchdog keeps its default timeout", "want", w.TimeoutSec, "err", err)
	}
	period := time.Duration(w.TimeoutSec) * time.Second
	if got, err := unix.IoctlGetInt(fd, unix.WDIOC_GETTIMEOUT); err == nil && got > 0 {
		period = time.Duration(got) * time.Second
	}
	s.log.Info("watchdog armed", "device", w.Device, "timeout", period)
	s.con.Event(event.Watchdog, "device", w.Device, "timeout", strconv.Itoa(int(period/time.Second)), "set", set)
	tick := time.NewTicker(period / 3)
	defer tick.Stop()
	for {
		_ = wd.KeepAlive()
		select {
		case <-ctx.Done():
			// Disarm: the reboot that follows is deliberate.
			if err := wd.MagicClose(); err != nil {
				s.log.Warn("watchdog close", "err", err)
			}
			return
		case <-tick.C:
		}
	}
}

// teardown syncs and unmounts what the init mounted, in reverse order.
func (s *system) teardown() {
	unix.Sync()
	s.mu.Lock()
	ms := append([]string(nil), s.mounts...)
	s.mu.Unlock()
	for i := len(ms) - 1; i >= 0; i-- {
		if err := unix.Unmount(ms[i], 0); err != nil {
			s.log.Warn("unmount, remounting read-only", "path", ms[i], "err", err)
			_ = unix.Mount("", ms[i], "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
			_ = unix.Unmount(ms[i], unix.MNT_DETACH)
		}
	}
	unix.Sync()
}

func readDeviceID() string {
	b, err := os.ReadFile(IdentityFile)
	if err != nil {
		return ""
	}
	var id struct {
		DeviceID string `json:"deviceId"`
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return ""
	}
	return id.DeviceID
}

// RequestStop asks a running PID 1 to reboot or power off; it is what the
// image's /sbin/reboot and /sbin/poweroff do.
func RequestStop(a Action) error {
	for sig, act := range stopSignals {
		if act == a && sig != unix.SIGINT {
			return unix.Kill(1, sig.(unix.Signal))
		}
	}
	return errors.ErrUnsupported
}
