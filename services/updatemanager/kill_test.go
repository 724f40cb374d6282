package updatemanager_test

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/services/internal/logging"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/store"
	"github.com/kantofw/kanto/services/internal/updateagent"
	"github.com/kantofw/kanto/services/internal/updateagent/updateagenttest"
	"github.com/kantofw/kanto/services/internal/updateapi"
	"github.com/kantofw/kanto/services/updatemanager"
)

// TestHelperManager is the manager process of the kill tests.
func TestHelperManager(t *testing.T) {
	if os.Getenv("UM_TEST_CHILD") != "1" {
		t.Skip("helper process")
	}
	cfg := baseConfig(os.Getenv("UM_BROKER"), os.Getenv("UM_DIR"), strings.Split(os.Getenv("UM_DOMAINS"), ",")...)
	s, err := updatemanager.New(cfg, updatemanager.ServiceDeps{Log: logging.Discard(), Reboot: &fakeReboot{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestHelperAgent is a test domain agent process; UM_HOLD names a command
// it never finishes.
func TestHelperAgent(t *testing.T) {
	if os.Getenv("UM_TEST_CHILD") != "1" {
		t.Skip("helper process")
	}
	name := os.Getenv("UM_DOMAIN")
	d := updateagenttest.New(name, map[string]string{"old": "0.1"})
	if h := os.Getenv("UM_HOLD"); h != "" {
		d.Hold(updateapi.CommandType(h))
	}
	db, err := store.Open(filepath.Join(os.Getenv("UM_DIR"), name+"-agent.db"), "update-agent", updateagent.Migrations)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := updateagent.New(updateagent.Options{Domain: name, DB: db, Log: logging.Discard(),
		MQTT: mqtt.Options{URL: os.Getenv("UM_BROKER"), ClientID: "child-agent-" + name, CleanSession: true, AutoReconnect: true}}, d)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestManagerKilledMidCampaignResumes(t *testing.T) {
	r := newRig(t, "containers", "software")
	release := r.domains["software"].Hold(updateapi.CommandUpdate)
	defer release()
	env := []string{"UM_BROKER=" + r.url, "UM_DIR=" + r.dir, "UM_DOMAINS=containers,software"}
	c := startChild(t, "TestHelperManager", env...)
	waitManagerReady(r.o, 0)
	r.apply("act-k", desired(map[string]map[string]string{"containers": {"a": "1"}, "software": {"p": "1"}}))
	r.o.waitAgentStatus("software", "act-k", updateapi.BaselineUpdating)
	r.o.waitAgentStatus("containers", "act-k", updateapi.BaselineUpdateSuccess)
	c.kill()
	// The agent finishes while no manager listens: its feedback is lost.
	release()
	r.o.waitAgentStatus("software", "act-k", updateapi.BaselineUpdateSuccess)
	from := r.o.count()
	startChild(t, "TestHelperManager", env...)
	waitManagerReady(r.o, from)
	final := r.o.waitFinal("act-k")
	if final.Feedback.Status != updateapi.StatusCompleted {
		t.Fatalf("final %s %q", final.Feedback.Status, final.Feedback.Message)
	}
	ms := r.o.waitUntil("done", func(ms []observed) bool { return true })
	// The restarted manager reports where it stands (RUNNING) again.
	if diff := cmp.Diff([]S{"IDENTIFYING", "IDENTIFIED", "RUNNING", "RUNNING", "COMPLETED"}, statuses(ms, "deviceupdate", "act-k")); diff != "" {
		t.Errorf("manager (-want +got):\n%s", diff)
	}
	for _, d := range []string{"containers", "software"} {
		if got := r.domains[d].Calls(); !slices.Equal(got, []updateapi.CommandType{"DOWNLOAD", "UPDATE", "ACTIVATE", "CLEANUP"}) {
			t.Errorf("%s executed %v, want each phase once", d, got)
		}
	}
}

func TestAgentKilledMidPhaseResumes(t *testing.T) {
	r := newRig(t, "containers")
	env := []string{"UM_BROKER=" + r.url, "UM_DIR=" + r.dir, "UM_DOMAIN=software"}
	c := startChild(t, "TestHelperAgent", append(env, "UM_HOLD=UPDATE")...)
	r.o.waitUntil("software agent up", func(ms []observed) bool {
		return slices.ContainsFunc(ms, func(m observed) bool { return m.Topic == "softwareupdate/currentstate" })
	})
	startManager(t, r.o, baseConfig(r.url, r.dir, "containers", "software"), r.reboot)
	r.apply("act-a", desired(map[string]map[string]string{"containers": {"a": "1"}, "software": {"p": "1"}}))
	r.o.waitAgentStatus("software", "act-a", updateapi.BaselineUpdating)
	c.kill()
	startChild(t, "TestHelperAgent", env...)
	final := r.o.waitFinal("act-a")
	if final.Feedback.Status != updateapi.StatusCompleted {
		t.Fatalf("final %s %q", final.Feedback.Status, final.Feedback.Message)
	}
	ms := r.o.waitUntil("agent done", func(ms []observed) bool {
		return slices.Contains(statuses(ms, "softwareupdate", "act-a"), "COMPLETED")
	})
	want := []S{"IDENTIFYING", "IDENTIFIED", "DOWNLOADING", "DOWNLOAD_SUCCESS", "UPDATING", "UPDATING", "UPDATE_SUCCESS",
		"ACTIVATING", "ACTIVATION_SUCCESS", "CLEANUP_SUCCESS", "COMPLETED"}
	if diff := cmp.Diff(want, statuses(ms, "softwareupdate", "act-a")); diff != "" {
		t.Errorf("software (-want +got):\n%s", diff)
	}
}
