package daemon

import (
	"context"
	"log/slog"

	"github.com/kantofw/kanto/services/containers/ctrd"
	"github.com/kantofw/kanto/services/containers/mgr"
)

// startThings serves the Ditto features over the local broker. Not wired
// yet: see the package README.
func startThings(_ context.Context, cfg Config, _ *mgr.Manager, _ *ctrd.Client, log *slog.Logger) func() {
	log.Info("things features are not available in this build", "broker", cfg.Connection.BrokerURL)
	return func() {}
}
