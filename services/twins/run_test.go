package twins

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/internal/uplink"
)

// Run ends when its context ends, leaving no goroutine behind, whether the
// hub is reachable or not.
func TestRunEndsWithoutLeaks(t *testing.T) {
	local := mosquittotest.Start(t, mosquittotest.Options{})
	hub := mosquittotest.Start(t, mosquittotest.Options{})
	for _, address := range []string{hub.URL(), "tcp://127.0.0.1:1"} {
		before := runtime.NumGoroutine()
		dir := t.TempDir()
		st := Defaults()
		st.Address, st.DeviceID, st.TenantID, st.LocalAddress = address, "ns:dev", "T", local.URL()
		st.ThingsDB, st.BufferFile, st.ProvisioningFile = filepath.Join(dir, "things.db"), filepath.Join(dir, "buf.db"), ""
		env, _ := uplink.ReadEnv(func(string) string { return "" })
		env.BackoffInit, env.BackoffMax, env.AnnounceDelay = 100*time.Millisecond, 200*time.Millisecond, 10*time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- New(Options{Settings: st, Env: env, SyncDelay: 10 * time.Millisecond}).Run(ctx) }()
		time.Sleep(500 * time.Millisecond) // let it connect, sync and idle
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: Run: %v", address, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: Run did not end", address)
		}
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("%s: %d goroutines leaked:\n%s", address, n-before, buf[:runtime.Stack(buf, true)])
		}
	}
}
