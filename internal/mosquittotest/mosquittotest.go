// Package mosquittotest starts a real Mosquitto broker for a test on a free
// loopback port, in the test's temp folder, and stops it when the test ends.
package mosquittotest

import (
	"testing"

	"github.com/kantofw/kanto/internal/mosquitto"
	"github.com/kantofw/kanto/internal/testenv"
)

// Options and TLS are the runner's.
type (
	Options = mosquitto.Options
	TLS     = mosquitto.TLS
)

// Broker is a running broker whose Restart fails the test on error.
type Broker struct {
	*mosquitto.Broker
	t testing.TB
}

// Start starts a broker (failing in CI, skipping elsewhere, when Mosquitto
// is not installed) and stops it when the test ends.
func Start(t testing.TB, o Options) *Broker {
	t.Helper()
	testenv.LookPath(t, "mosquitto")
	b, err := mosquitto.Start(t.TempDir(), testenv.FreePort(t), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return &Broker{Broker: b, t: t}
}

// Restart restarts the broker on the same port and config.
func (b *Broker) Restart() {
	b.t.Helper()
	if err := b.Broker.Restart(); err != nil {
		b.t.Fatal(err)
	}
}
