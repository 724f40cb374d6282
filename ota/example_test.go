package ota_test

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/kantofw/kanto/board"
	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/firmware/slot"
	"github.com/kantofw/kanto/ota"
)

// A device's firmware agent: at every start Resume finishes whatever a
// crash or power cut interrupted and, on a trial boot of a new slot, runs
// the health checks and commits or rolls back. Install is called when an
// update arrives.
func Example() {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slots, err := slot.Load("/etc/kanto/firmware/slots.json")
	if err != nil {
		log.Error("slots", "err", err)
		return
	}
	kr, err := bundle.LoadKeyring("/etc/kanto/firmware/keyring.pem")
	if err != nil {
		log.Error("keyring", "err", err)
		return
	}
	scripts, _ := ota.ScriptsDir("/etc/kanto/firmware/health.d", time.Minute)
	agent, err := ota.New(
		ota.Config{DBPath: "/var/lib/kanto/firmware/ota.db", Slots: slots, Keyring: kr, AutoReboot: true},
		ota.Deps{
			Log:      log,
			Rebooter: &board.Hooks{Dir: "/etc/kanto/board.d", Log: log},
			Checks:   append([]ota.HealthCheck{ota.ServicesUp(ota.SystemdServices{}, "mosquitto")}, scripts...),
		})
	if err != nil {
		log.Error("agent", "err", err)
		return
	}
	defer agent.Close()

	if rec, err := agent.Resume(ctx); err != nil {
		log.Error("resume", "state", rec.State, "err", err)
	}
	// Later, when an update is requested:
	rec, err := agent.Install(ctx, "https://updates.example.com/device-1.4.0.kfw")
	log.Info("install", "state", rec.State, "err", err) // reboots into the new slot on success
}
