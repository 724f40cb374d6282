package ota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/firmware/install"
	"github.com/kantofw/kanto/firmware/slot"
)

// Sentinel error categories of the agent.
var (
	// ErrBusy: the request does not fit the current state (an update is
	// in progress, or there is nothing to commit or roll back).
	ErrBusy = errors.New("not possible in the current update state")
	// ErrUnknownState: the database holds a state this agent does not know.
	ErrUnknownState = errors.New("unknown update state")
)

// Rebooter restarts the device. Reboot normally does not return (the
// process is killed by the reboot); a returned nil means the reboot is
// under way.
type Rebooter interface {
	Reboot(ctx context.Context) error
}

// Config is what the agent is built from.
type Config struct {
	// DBPath is the bbolt database (on a persistent, non-A/B partition).
	DBPath string
	Slots  *slot.Config
	// Keyring verifies bundles.
	Keyring *bundle.Keyring
	// HealthTimeout bounds all health checks together (default 5 min).
	HealthTimeout time.Duration
	// MaxBoots is the reboot-loop cap: boots of the target seen while
	// rebooting or verifying before the agent gives up (default 3).
	MaxBoots int
	// MaxTransitions caps the records written for one update (default 30).
	MaxTransitions int
	// MaxInstallAttempts caps install attempts of one update: the first
	// and the resumptions after crashes or power cuts (default 3).
	MaxInstallAttempts int
	// AutoReboot reboots right after a successful install.
	AutoReboot bool
	// SkipIdentical skips writing frames the target already holds
	// (install.Installer.SkipIdentical).
	SkipIdentical bool
	// AllowDowngrade lets installs started by this agent override the
	// slots file's downgrade "refuse" policy (install.Options).
	AllowDowngrade bool
}

// Deps are the agent's collaborators. Log and Rebooter are required.
type Deps struct {
	Log      *slog.Logger
	Rebooter Rebooter
	Checks   []HealthCheck
	// Scheme defaults to the one of Config.Slots.
	Scheme bootenv.Scheme
	// HTTP tunes downloads of bundle URLs.
	HTTP install.HTTPOptions
	// Progress receives install progress.
	Progress func(install.Progress)
	// BootID returns the kernel's boot id (default: read
	// /proc/sys/kernel/random/boot_id). Tests replace it.
	BootID func() (string, error)
	// Now defaults to time.Now.
	Now func() time.Time
	// AfterPersist, if set, runs after each record is stored; the kill
	// tests use it to SIGKILL the agent at every state.
	AfterPersist func(Record)
	// AfterInstallStep, if set, runs after each durable step of the
	// installer (target marked bad, images written, target armed).
	AfterInstallStep func(install.Step)
}

// Agent is the firmware update agent: it installs bundles into the inactive
// slot, reboots into them, verifies them and commits or rolls back,
// persisting every step so that a crash or power cut at any point is
// resumed by Resume according to the recovery table. Methods are safe for
// concurrent use; long operations hold the agent's lock.
type Agent struct {
	cfg  Config
	deps Deps
	db   *db
	inst *install.Installer
	log  *slog.Logger
	mu   sync.Mutex
}

// New opens the agent's database and migrates it.
func New(cfg Config, deps Deps) (*Agent, error) {
	if cfg.Slots == nil || deps.Rebooter == nil || deps.Log == nil {
		return nil, errors.New("ota: Config.Slots, Deps.Rebooter and Deps.Log are required")
	}
	if cfg.HealthTimeout == 0 {
		cfg.HealthTimeout = 5 * time.Minute
	}
	if cfg.MaxBoots == 0 {
		cfg.MaxBoots = 3
	}
	if cfg.MaxTransitions == 0 {
		cfg.MaxTransitions = 30
	}
	if cfg.MaxInstallAttempts == 0 {
		cfg.MaxInstallAttempts = 3
	}
	if deps.Scheme == nil {
		s, _, err := cfg.Slots.Scheme()
		if err != nil {
			return nil, err
		}
		deps.Scheme = s
	}
	if deps.BootID == nil {
		deps.BootID = kernelBootID
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	d, err := openDB(cfg.DBPath)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, deps: deps, db: d, log: deps.Log}
	a.inst = &install.Installer{Slots: cfg.Slots, Scheme: deps.Scheme, Keyring: cfg.Keyring, Log: deps.Log, Now: deps.Now, SkipIdentical: cfg.SkipIdentical}
	return a, nil
}

// lockOp serializes the operations that change the update, within the
// process (mu) and across processes (an flock next to the database), so
// the CLI and the daemon never run two at once. Another process holding it
// is ErrBusy.
func (a *Agent) lockOp() (func(), error) {
	a.mu.Lock()
	release, err := flockNB(a.cfg.DBPath + ".lock")
	if err != nil {
		a.mu.Unlock()
		return nil, err
	}
	return func() {
		release()
		a.mu.Unlock()
	}, nil
}

// Close closes the database.
func (a *Agent) Close() error { return a.db.close() }

func kernelBootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b)), err
}

// Status is the agent's view for clients.
type Status struct {
	Record Record                 `json:"update"`
	Booted string                 `json:"booted,omitempty"`
	Boot   *bootenv.State         `json:"bootenv,omitempty"`
	Slots  map[string]slot.Status `json:"slots,omitempty"`
	// Errors lists parts of the status that could not be read.
	Errors []string `json:"errors,omitempty"`
}

// Status reports the update record, the booted slot, the boot environment
// and the slot status record.
func (a *Agent) Status() (Status, error) {
	r, err := a.db.load()
	if err != nil {
		return Status{}, err
	}
	st := Status{Record: r}
	if st.Booted, err = a.cfg.Slots.Booted(); err != nil {
		st.Errors = append(st.Errors, err.Error())
	}
	if bs, err := a.deps.Scheme.State(); err != nil {
		st.Errors = append(st.Errors, err.Error())
	} else {
		st.Boot = &bs
	}
	if sf, err := a.cfg.Slots.LoadStatus(); err != nil {
		st.Errors = append(st.Errors, err.Error())
	} else {
		st.Slots = sf.Slots
	}
	return st, nil
}

// History returns the transitions of the current (or last) update.
func (a *Agent) History() ([]Transition, error) {
	r, err := a.db.load()
	if err != nil {
		return nil, err
	}
	if r.Transaction == "" {
		return nil, nil
	}
	return a.db.history(r.Transaction)
}

// persist moves r to state to, stores it with the transition, and calls
// the AfterPersist hook.
func (a *Agent) persist(r *Record, to State, reason string) error {
	from := r.State
	r.State, r.Reason = to, reason
	r.Transitions++
	r.Updated = a.deps.Now().UTC()
	if id, err := a.deps.BootID(); err == nil {
		r.BootID = id
	}
	if err := a.db.store(*r, Transition{Transaction: r.Transaction, From: from, To: to, Reason: reason, At: r.Updated}); err != nil {
		return fmt.Errorf("persist %s: %w", to, err)
	}
	a.log.Info("update state", "from", from, "to", to, "reason", reason, "transaction", r.Transaction)
	if a.deps.AfterPersist != nil {
		a.deps.AfterPersist(*r)
	}
	return nil
}

// Install downloads (file path or http(s) URL) and installs a bundle into
// the inactive slot, then reboots if Config.AutoReboot. It returns the
// record after the install (installed, or failed with the error).
func (a *Agent) Install(ctx context.Context, source string) (Record, error) {
	unlock, err := a.lockOp()
	if err != nil {
		return Record{}, err
	}
	defer unlock()
	r, err := a.db.load()
	if err != nil {
		return Record{}, err
	}
	if !r.State.Terminal() {
		return r, fmt.Errorf("update %s is %s: %w", r.Transaction, r.State, ErrBusy)
	}
	booted, err := a.cfg.Slots.Booted()
	if err != nil {
		return r, err
	}
	now := a.deps.Now().UTC()
	r = Record{State: r.State, Transaction: newTransaction(), Source: source, Previous: booted, Started: now, AllowDowngrade: a.cfg.AllowDowngrade}
	return r, a.install(ctx, &r, "install requested", false)
}

// install runs one install attempt of r.Source: downloading, installing,
// installed, then the reboot if Config.AutoReboot. resume keeps what the
// target already holds of the bundle.
func (a *Agent) install(ctx context.Context, r *Record, reason string, resume bool) error {
	r.Attempts++
	if err := a.persist(r, StateDownloading, reason); err != nil {
		return err
	}
	src, err := install.Open(ctx, r.Source, a.httpOptions())
	if err != nil {
		return a.failInstall(r, fmt.Errorf("open %s: %w", r.Source, err))
	}
	defer src.Close()
	_, err = a.inst.Install(ctx, src, install.Options{
		Transaction:    r.Transaction,
		Resume:         resume,
		AllowDowngrade: r.AllowDowngrade,
		Progress:       a.deps.Progress,
		AfterStep:      a.deps.AfterInstallStep,
		OnVerified: func(m *bundle.Manifest, target string) error {
			if r.Target != "" && target != r.Target {
				return fmt.Errorf("resumed install targets slot %s, the first attempt %s: %w", target, r.Target, ErrBusy)
			}
			r.Version, r.Target = m.Version, target
			return a.persist(r, StateInstalling, "bundle verified, writing slot "+target)
		},
	})
	if err != nil {
		return a.failInstall(r, err)
	}
	if err := a.persist(r, StateInstalled, "slot "+r.Target+" written and armed"); err != nil {
		return err
	}
	if a.cfg.AutoReboot {
		return a.reboot(ctx, r)
	}
	return nil
}

func (a *Agent) httpOptions() install.HTTPOptions {
	o := a.deps.HTTP
	if o.Log == nil {
		o.Log = a.log
	}
	return o
}

// failInstall records a failed install. The target, if anything was
// written, is already marked bad by the installer.
func (a *Agent) failInstall(r *Record, cause error) error {
	r.Error = cause.Error()
	if err := a.persist(r, StateFailed, "install failed"); err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

func newTransaction() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Reboot reboots into the installed slot.
func (a *Agent) Reboot(ctx context.Context) error {
	unlock, err := a.lockOp()
	if err != nil {
		return err
	}
	defer unlock()
	r, err := a.db.load()
	if err != nil {
		return err
	}
	if r.State != StateInstalled && r.State != StateRebooting {
		return fmt.Errorf("update is %s, want installed: %w", r.State, ErrBusy)
	}
	return a.reboot(ctx, &r)
}

func (a *Agent) reboot(ctx context.Context, r *Record) error {
	if err := a.persist(r, StateRebooting, "rebooting into slot "+r.Target); err != nil {
		return err
	}
	return a.deps.Rebooter.Reboot(ctx)
}

// Resume is called once at every start of the agent (normally once per
// boot, by the image's init or the service). It applies the recovery table
// to whatever state a crash, kill or power cut left behind, and when the
// device runs the new slot on trial it runs the health checks and commits
// or rolls back. It returns the resulting record. Resume blocks while it
// works: a resumed install downloads the rest of the bundle, and the
// health checks take up to Config.HealthTimeout; run it off the boot's
// critical path.
func (a *Agent) Resume(ctx context.Context) (Record, error) {
	unlock, err := a.lockOp()
	if err != nil {
		return Record{}, err
	}
	defer unlock()
	r, err := a.db.load()
	if err != nil {
		return r, err
	}
	a.countBoot()
	if r.State.Terminal() {
		return r, nil
	}
	booted, err := a.cfg.Slots.Booted()
	if err != nil {
		return r, err
	}
	bootID, _ := a.deps.BootID()
	sit := situation{
		rebooted:     bootID != "" && r.BootID != "" && bootID != r.BootID,
		onTarget:     r.Target != "" && booted == r.Target,
		overTransits: r.Transitions >= a.cfg.MaxTransitions,
		autoReboot:   a.cfg.AutoReboot,
		canRetry:     r.Source != "" && r.Attempts < a.cfg.MaxInstallAttempts,
	}
	if bs, err := a.deps.Scheme.State(); err == nil && r.Target != "" {
		sit.targetArmed = bs.Slots[r.Target].Trial && bs.Primary() == r.Target
	}
	if sit.rebooted && sit.onTarget && (r.State == StateRebooting || r.State == StateVerifying) {
		r.Boots++
	}
	sit.overBoots = r.Boots > a.cfg.MaxBoots
	act, reason, err := nextAction(r.State, sit)
	if err != nil {
		return r, err
	}
	a.log.Info("resuming update", "state", r.State, "booted", booted, "action", act, "reason", reason)
	switch act {
	case actNone:
		return r, nil
	case actFail:
		if r.Target != "" && r.State == StateInstalling {
			if err := a.markBad(r.Target); err != nil {
				return r, err
			}
		}
		r.Error = reason
		return r, a.persist(&r, StateFailed, reason)
	case actFailRollback:
		r.Error = reason
		if sit.onTarget {
			return r, a.rollback(ctx, &r, StateFailed, reason)
		}
		if r.Target != "" {
			if err := a.markBad(r.Target); err != nil {
				return r, err
			}
		}
		return r, a.persist(&r, StateFailed, reason)
	case actInstalled:
		if err := a.persist(&r, StateInstalled, reason); err != nil {
			return r, err
		}
		if a.cfg.AutoReboot {
			return r, a.reboot(ctx, &r)
		}
		return r, nil
	case actRolledBack:
		if err := a.markBad(r.Target); err != nil {
			return r, err
		}
		return r, a.persist(&r, StateRolledBack, reason)
	case actRollback:
		r.Error = reason
		return r, a.rollback(ctx, &r, StateRolledBack, reason)
	case actReboot:
		return r, a.reboot(ctx, &r)
	case actResumeInstall:
		err := a.install(ctx, &r, reason, true)
		return r, err
	case actVerify:
		// Persisted even when already verifying: Boots and Transitions
		// must survive the next crash.
		if err := a.persist(&r, StateVerifying, reason); err != nil {
			return r, err
		}
		return a.verify(ctx, &r)
	}
	return r, fmt.Errorf("action %d: %w", act, ErrUnknownState)
}

// countBoot increments the boot count of the booted slot once per boot
// (the last counted boot id is kept in the database).
func (a *Agent) countBoot() {
	booted, err := a.cfg.Slots.Booted()
	if err != nil {
		return
	}
	id, err := a.deps.BootID()
	if err != nil || id == "" {
		return
	}
	first, err := a.db.markBoot(id)
	if err != nil || !first {
		return
	}
	if err := a.cfg.Slots.UpdateStatus(booted, func(s *slot.Status) { s.BootCount++ }); err != nil {
		a.log.Warn("slot boot count", "err", err)
	}
}

// verify runs the health checks and commits or rolls back.
func (a *Agent) verify(ctx context.Context, r *Record) (Record, error) {
	err := RunChecks(ctx, a.deps.Checks, a.cfg.HealthTimeout)
	if err != nil && ctx.Err() != nil {
		// Shutting down: not a verdict. The next start verifies again.
		return *r, ctx.Err()
	}
	if err != nil {
		a.log.Warn("health checks failed, rolling back", "err", err)
		r.Error = err.Error()
		return *r, a.rollback(ctx, r, StateRolledBack, "health checks failed")
	}
	return *r, a.commit(r, "health checks passed")
}

func (a *Agent) commit(r *Record, reason string) error {
	if err := a.deps.Scheme.Commit(r.Target); err != nil {
		return fmt.Errorf("commit slot %s: %w", r.Target, err)
	}
	now := a.deps.Now().UTC()
	if err := a.cfg.Slots.UpdateStatus(r.Target, func(s *slot.Status) { s.Status, s.CommittedAt = slot.StatusGood, now }); err != nil {
		return err
	}
	r.Error = ""
	return a.persist(r, StateCommitted, reason)
}

func (a *Agent) markBad(target string) error {
	if target == "" {
		return nil
	}
	if err := a.deps.Scheme.MarkBad(target); err != nil {
		return fmt.Errorf("mark slot %s bad: %w", target, err)
	}
	return a.cfg.Slots.UpdateStatus(target, func(s *slot.Status) { s.Status = slot.StatusBad })
}

// rollback marks the target bad, records to, and reboots into the previous
// slot if the target is the booted one.
func (a *Agent) rollback(ctx context.Context, r *Record, to State, reason string) error {
	if err := a.markBad(r.Target); err != nil {
		return err
	}
	if err := a.persist(r, to, reason); err != nil {
		return err
	}
	booted, err := a.cfg.Slots.Booted()
	if err == nil && booted == r.Target {
		return a.deps.Rebooter.Reboot(ctx)
	}
	return nil
}

// Commit marks the booted new slot good without waiting for the health
// checks (an operator's or the image init's decision).
func (a *Agent) Commit(ctx context.Context) (Record, error) {
	unlock, err := a.lockOp()
	if err != nil {
		return Record{}, err
	}
	defer unlock()
	r, err := a.db.load()
	if err != nil {
		return r, err
	}
	booted, err := a.cfg.Slots.Booted()
	if err != nil {
		return r, err
	}
	if (r.State != StateVerifying && r.State != StateRebooting) || booted != r.Target {
		return r, fmt.Errorf("update is %s on slot %s (target %s): %w", r.State, booted, r.Target, ErrBusy)
	}
	return r, a.commit(&r, "committed on request")
}

// Rollback abandons the current update: before the reboot it marks the
// target bad; on the new slot it marks it bad and reboots to the previous.
func (a *Agent) Rollback(ctx context.Context) (Record, error) {
	unlock, err := a.lockOp()
	if err != nil {
		return Record{}, err
	}
	defer unlock()
	r, err := a.db.load()
	if err != nil {
		return r, err
	}
	switch r.State {
	case StateInstalled, StateRebooting, StateVerifying:
	default:
		return r, fmt.Errorf("update is %s: %w", r.State, ErrBusy)
	}
	return r, a.rollback(ctx, &r, StateRolledBack, "rolled back on request")
}
