package lifecycle

import (
	"context"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier reports to systemd. Outside systemd (no NOTIFY_SOCKET) every
// method is a no-op, so services call it unconditionally.
type Notifier struct {
	log *slog.Logger
	// notify is the seam tests replace; it has daemon.SdNotify's contract.
	notify func(state string) (bool, error)
	// interval returns the watchdog interval, 0 when disabled.
	interval func() (time.Duration, error)
}

// NewNotifier returns a notifier that talks to systemd.
func NewNotifier(log *slog.Logger) *Notifier {
	return &Notifier{
		log:      log,
		notify:   func(s string) (bool, error) { return daemon.SdNotify(false, s) },
		interval: func() (time.Duration, error) { return daemon.SdWatchdogEnabled(false) },
	}
}

// Ready sends READY=1 with an optional status line.
func (n *Notifier) Ready(status string) { n.send(daemon.SdNotifyReady + "\nSTATUS=" + status) }

// Status updates the status line shown by systemctl status.
func (n *Notifier) Status(status string) { n.send("STATUS=" + status) }

// Stopping sends STOPPING=1.
func (n *Notifier) Stopping() { n.send(daemon.SdNotifyStopping) }

func (n *Notifier) send(state string) {
	if _, err := n.notify(state); err != nil {
		n.log.Warn("sd_notify failed", "err", err)
	}
}

// Watchdog pings systemd at half the configured WatchdogSec until ctx ends.
// alive is asked before each ping; a service that is wedged returns false and
// systemd restarts it. alive may be nil.
func (n *Notifier) Watchdog(ctx context.Context, alive func() bool) {
	iv, err := n.interval()
	if err != nil || iv <= 0 {
		return
	}
	t := time.NewTicker(iv / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive == nil || alive() {
				n.send(daemon.SdNotifyWatchdog)
			}
		}
	}
}
