package updateagent

import (
	"log/slog"

	ctrsvc "github.com/kantofw/kanto/services/containers/api/services/containers"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/store"
	"github.com/kantofw/kanto/services/internal/updateagent"
)

// Options are what the container management daemon passes when its
// update_agent.enable is set (keys update_agent.domain,
// update_agent.system_containers, update_agent.verbose_inventory_report,
// connection.broker_url).
type Options struct {
	Domain           string // default "containers"
	SystemContainers []string
	VerboseInventory bool // report default container parameters too
	Version          string
	MQTT             mqtt.Options
	DB               *store.DB // persists the running operation; may be nil
	Log              *slog.Logger
}

// NewAgent returns the containers domain agent speaking to the daemon
// through api (a client of its gRPC socket, or an in-process adapter);
// Run it with the daemon's context.
func NewAgent(api ctrsvc.ContainersClient, o Options) *updateagent.Agent {
	if o.Domain == "" {
		o.Domain = "containers"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	d := &Domain{Name: o.Domain, API: api, SystemContainers: o.SystemContainers, VerboseInventory: o.VerboseInventory, Version: o.Version, Log: o.Log}
	return updateagent.New(updateagent.Options{Domain: o.Domain, MQTT: o.MQTT, DB: o.DB, Log: o.Log}, d)
}
