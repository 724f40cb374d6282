package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// ErrNoProvisioningFile is returned by WatchProvisioning for an empty path
// (upstream's CONFIG_ERROR).
var ErrNoProvisioningFile = errors.New("provisioningFile is empty")

// DefaultProvisioningTick is upstream's: provisioning file events are acted
// on at most once per 3 s.
const DefaultProvisioningTick = 3 * time.Second

// ProvisioningWatcher reports changes of the provisioning file as upstream
// does: the file's directory is watched (so a file created, renamed in or
// renamed away is seen too), events for the file's name are collected, and
// at most one change is reported per tick.
//
// Its goroutine is owned by the watcher and ends with Close.
type ProvisioningWatcher struct {
	// C receives one value per tick in which the file changed. It has room
	// for one: changes during a relaunch are not lost, and never pile up.
	C <-chan struct{}

	w    *fsnotify.Watcher
	done chan struct{}
	exit chan struct{}
}

// WatchProvisioning starts watching the file at path; tick <= 0 means
// DefaultProvisioningTick. A missing directory is created (the factory may
// write the file later).
func WatchProvisioning(path string, tick time.Duration, log *slog.Logger) (*ProvisioningWatcher, error) {
	if path == "" {
		return nil, ErrNoProvisioningFile
	}
	if tick <= 0 {
		tick = DefaultProvisioningTick
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("provisioning file %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		w.Close()
		return nil, err
	}
	out := make(chan struct{}, 1)
	pw := &ProvisioningWatcher{C: out, w: w, done: make(chan struct{}), exit: make(chan struct{})}
	go pw.run(abs, tick, out, log)
	return pw, nil
}

func (pw *ProvisioningWatcher) run(abs string, tick time.Duration, out chan<- struct{}, log *slog.Logger) {
	defer close(pw.exit)
	t := time.NewTicker(tick)
	defer t.Stop()
	dirty := false
	for {
		select {
		case <-pw.done:
			return
		case ev, ok := <-pw.w.Events:
			if !ok {
				return
			}
			if filepath.Clean(ev.Name) == abs {
				dirty = true
			}
		case err, ok := <-pw.w.Errors:
			if ok {
				log.Warn("provisioning watcher", "err", err)
			}
		case <-t.C:
			if dirty {
				dirty = false
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}
}

// Close stops watching and waits for the watcher's goroutine.
func (pw *ProvisioningWatcher) Close() {
	close(pw.done)
	pw.w.Close()
	<-pw.exit
}

// Relaunch runs launch until ctx ends, restarting it whenever changes
// delivers (the provisioning file changed; nil: never): the running launch
// is cancelled and awaited, then started again with relaunch true. It is
// the launcher loop of the connectors, as upstream's event loop.
func Relaunch(ctx context.Context, changes <-chan struct{}, launch func(ctx context.Context, relaunch bool), log *slog.Logger, file string) {
	relaunch := false
	for {
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func(relaunch bool) { defer close(done); launch(lctx, relaunch) }(relaunch)
		select {
		case <-ctx.Done():
			cancel()
			<-done
			return
		case <-changes:
			log.Info("provisioning file changed, relaunching", "file", file)
			cancel()
			<-done
			relaunch = true
		}
	}
}
