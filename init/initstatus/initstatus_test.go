package initstatus

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/kantofw/kanto/ota"
)

// The OTA agent's services-up health check can use the init's status.
var _ ota.ServiceStatus = Reader{}

func TestServiceActive(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status.json")
	err := Write(p, Status{Slot: "A", Services: map[string]Service{
		"mosquitto":       {PID: 42, Ready: true},
		"suite-connector": {PID: 43, Ready: false, Restarts: 2},
		"crashed":         {PID: 0, Ready: false},
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := Reader{Path: p}
	for name, want := range map[string]bool{"mosquitto": true, "suite-connector": false, "crashed": false} {
		got, err := r.ServiceActive(context.Background(), name)
		if err != nil || got != want {
			t.Errorf("ServiceActive(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := r.ServiceActive(context.Background(), "nope"); !errors.Is(err, ErrUnknownService) {
		t.Errorf("unknown service: %v, want ErrUnknownService", err)
	}
}

// The OTA agent's ServicesUp check passes on our status file.
func TestOTAServicesUpCheck(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status.json")
	if err := Write(p, Status{Services: map[string]Service{"mosquitto": {PID: 1, Ready: true}}}); err != nil {
		t.Fatal(err)
	}
	if err := ota.ServicesUp(Reader{Path: p}, "mosquitto").Run(context.Background()); err != nil {
		t.Errorf("ServicesUp check: %v", err)
	}
}

func TestWaitHealth(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status.json")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := WaitHealth(ctx, p); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("no file: %v, want deadline", err)
	}
	if err := Write(p, Status{Health: HealthUnhealthy, Reason: "broken down"}); err != nil {
		t.Fatal(err)
	}
	if err := WaitHealth(context.Background(), p); !errors.Is(err, ErrUnhealthy) {
		t.Errorf("unhealthy: %v", err)
	}
	if err := Write(p, Status{Health: HealthHealthy}); err != nil {
		t.Fatal(err)
	}
	if err := WaitHealth(context.Background(), p); err != nil {
		t.Errorf("healthy: %v", err)
	}
}
