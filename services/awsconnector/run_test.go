package awsconnector

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/internal/cloudpeer/awsiot"
	"github.com/kantofw/kanto/services/internal/uplink"
)

// Run ends when its context ends, leaving no goroutine behind, whether AWS
// is reachable or not.
func TestRunEndsWithoutLeaks(t *testing.T) {
	local := mosquittotest.Start(t, mosquittotest.Options{})
	cloud := awsiot.NewCloud(t, awsiot.Options{})
	cert, key := cloud.DeviceFiles(t, "dev", "test:device")
	for _, address := range []string{cloud.Endpoint, "tls://127.0.0.1:1"} {
		before := runtime.NumGoroutine()
		st := Defaults()
		st.Address, st.CACert, st.Cert, st.Key, st.LocalAddress = address, cloud.CAFile, cert, key, local.URL()
		st.BufferFile = filepath.Join(t.TempDir(), "buf.db")
		env, _ := uplink.ReadEnv(func(string) string { return "" })
		env.BackoffInit, env.BackoffMax = 100*time.Millisecond, 200*time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- New(Options{Settings: st, Env: env}).Run(ctx) }()
		time.Sleep(500 * time.Millisecond) // let it connect and idle
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
