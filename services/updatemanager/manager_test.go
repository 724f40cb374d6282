package updatemanager_test

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/services/internal/updateagent/updateagenttest"
	"github.com/kantofw/kanto/services/internal/updateapi"
	"github.com/kantofw/kanto/services/updatemanager"
)

type S = updateapi.Status

var fullAgentSequence = []S{
	"IDENTIFYING", "IDENTIFIED", "DOWNLOADING", "DOWNLOAD_SUCCESS", "UPDATING", "UPDATE_SUCCESS",
	"ACTIVATING", "ACTIVATION_SUCCESS", "CLEANUP_SUCCESS", "COMPLETED",
}

type rig struct {
	t       *testing.T
	url     string
	dir     string
	o       *observer
	domains map[string]*updateagenttest.Domain
	reboot  *fakeReboot
}

// newRig starts Mosquitto, one test agent per domain and the observer.
func newRig(t *testing.T, domains ...string) *rig {
	b := mosquitto(t)
	r := &rig{t: t, url: b.URL(), dir: t.TempDir(), domains: map[string]*updateagenttest.Domain{}, reboot: &fakeReboot{}}
	r.o = newObserver(t, r.url)
	for _, d := range domains {
		r.domains[d] = updateagenttest.New(d, map[string]string{"old": "0.1"})
		startAgent(t, r.url, r.dir, r.domains[d])
	}
	return r
}

func (r *rig) config() updatemanager.Config {
	return baseConfig(r.url, r.dir, sortedKeys(r.domains)...)
}

func (r *rig) apply(id string, ds updateapi.DesiredState) {
	r.o.publish("deviceupdate/desiredstate", id, ds)
}

func threeDomains() updateapi.DesiredState {
	return desired(map[string]map[string]string{
		"containers": {"influxdb": "2.7.1", "old": "0.1"},
		"firmware":   {"rootfs": "2.0.0", "old": "0.1"},
		"software":   {"pkg": "1.0", "old": "0.1"},
	})
}

func TestCampaignThreeDomains(t *testing.T) {
	r := newRig(t, "containers", "firmware", "software")
	cfg := r.config()
	cfg.Agents["firmware"].RebootRequired = true
	startManager(t, r.o, cfg, r.reboot)

	r.apply("act-1", threeDomains())
	final := r.o.waitFinal("act-1")
	ms := r.o.waitUntil("final current state", func(ms []observed) bool {
		for _, m := range ms {
			if m.Topic == "deviceupdate/currentstate" && m.Env.ActivityID == "act-1" {
				return true
			}
		}
		return false
	})
	if diff := cmp.Diff([]S{"IDENTIFYING", "IDENTIFIED", "RUNNING", "COMPLETED"}, statuses(ms, "deviceupdate", "act-1")); diff != "" {
		t.Errorf("manager feedback (-want +got):\n%s", diff)
	}
	if final.Feedback.Message != "" {
		t.Errorf("final message %q", final.Feedback.Message)
	}
	for _, d := range []string{"containers", "firmware", "software"} {
		if diff := cmp.Diff(fullAgentSequence, statuses(ms, d+"update", "act-1")); diff != "" {
			t.Errorf("%s feedback (-want +got):\n%s", d, diff)
		}
		if got := r.domains[d].Calls(); !slices.Equal(got, []updateapi.CommandType{"DOWNLOAD", "UPDATE", "ACTIVATE", "CLEANUP"}) {
			t.Errorf("%s commands %v", d, got)
		}
		if got, want := r.domains[d].Installed(), map[string]string{"old": "0.1", cmpName(d): cmpVersion(d)}; !cmp.Equal(got, want) {
			t.Errorf("%s installed %v, want %v", d, got, want)
		}
	}
	// Every action of the final report succeeded, activation shown as update.
	for _, a := range final.Feedback.Actions {
		if a.Status != updateapi.ActionUpdateSuccess {
			t.Errorf("final action %+v", a)
		}
	}
	if len(final.Feedback.Actions) != 3 {
		t.Errorf("final actions %+v", final.Feedback.Actions)
	}
	inv := currentState(t, ms, "act-1")
	for _, id := range []string{"device-update-manager", "containers:influxdb", "firmware:rootfs", "software:pkg"} {
		if !slices.ContainsFunc(inv.SoftwareNodes, func(n updateapi.SoftwareNode) bool { return n.ID == id }) {
			t.Errorf("current state lacks %s: %+v", id, inv.SoftwareNodes)
		}
	}
	// firmware requires a reboot and changed something.
	deadline := time.Now().Add(waitFor)
	for r.reboot.count() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r.reboot.count() != 1 {
		t.Errorf("reboots = %d, want 1", r.reboot.count())
	}
}

func cmpName(d string) string {
	return map[string]string{"containers": "influxdb", "firmware": "rootfs", "software": "pkg"}[d]
}

func cmpVersion(d string) string {
	return map[string]string{"containers": "2.7.1", "firmware": "2.0.0", "software": "1.0"}[d]
}

func currentState(t *testing.T, ms []observed, id string) updateapi.Inventory {
	t.Helper()
	for _, m := range ms {
		if m.Topic == "deviceupdate/currentstate" && m.Env.ActivityID == id {
			inv, err := updateapi.ParseInventory(m.Env.Payload)
			if err != nil {
				t.Fatal(err)
			}
			return *inv
		}
	}
	t.Fatalf("no current state for %s", id)
	return updateapi.Inventory{}
}

func TestNothingToDoCompletesWithoutCommands(t *testing.T) {
	r := newRig(t, "containers")
	startManager(t, r.o, r.config(), r.reboot)
	r.apply("same", desired(map[string]map[string]string{"containers": {"old": "0.1"}}))
	r.o.waitFinal("same")
	ms := r.o.waitUntil("agent completion", func(ms []observed) bool { return len(statuses(ms, "containersupdate", "same")) == 3 })
	if diff := cmp.Diff([]S{"IDENTIFYING", "IDENTIFIED", "COMPLETED"}, statuses(ms, "deviceupdate", "same")); diff != "" {
		t.Errorf("manager (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]S{"IDENTIFYING", "IDENTIFIED", "COMPLETED"}, statuses(ms, "containersupdate", "same")); diff != "" {
		t.Errorf("agent (-want +got):\n%s", diff)
	}
	if calls := r.domains["containers"].Calls(); len(calls) != 0 {
		t.Errorf("commands sent: %v", calls)
	}
}

func TestOneDomainFailsIsCleanedUpAlone(t *testing.T) {
	r := newRig(t, "containers", "firmware", "software")
	r.domains["software"].FailOn(updateapi.CommandUpdate, "install script exited with 3")
	startManager(t, r.o, r.config(), r.reboot)
	r.apply("act-f", threeDomains())
	final := r.o.waitFinal("act-f")
	if final.Feedback.Status != updateapi.StatusIncomplete ||
		final.Feedback.Message != "the update process is incompleted: [software]: install script exited with 3" {
		t.Errorf("final %s %q", final.Feedback.Status, final.Feedback.Message)
	}
	ms := r.o.waitUntil("all agents done", func(ms []observed) bool {
		return slices.Contains(statuses(ms, "softwareupdate", "act-f"), "INCOMPLETE")
	})
	want := []S{"IDENTIFYING", "IDENTIFIED", "DOWNLOADING", "DOWNLOAD_SUCCESS", "UPDATING", "UPDATE_FAILURE", "CLEANUP_SUCCESS", "INCOMPLETE"}
	if diff := cmp.Diff(want, statuses(ms, "softwareupdate", "act-f")); diff != "" {
		t.Errorf("software (-want +got):\n%s", diff)
	}
	if got := r.domains["software"].Calls(); !slices.Equal(got, []updateapi.CommandType{"DOWNLOAD", "UPDATE", "CLEANUP"}) {
		t.Errorf("software commands %v", got)
	}
	for _, d := range []string{"containers", "firmware"} {
		if diff := cmp.Diff(fullAgentSequence, statuses(ms, d+"update", "act-f")); diff != "" {
			t.Errorf("%s (-want +got):\n%s", d, diff)
		}
	}
	if diff := cmp.Diff([]S{"IDENTIFYING", "IDENTIFIED", "RUNNING", "INCOMPLETE"}, statuses(ms, "deviceupdate", "act-f")); diff != "" {
		t.Errorf("manager (-want +got):\n%s", diff)
	}
	if r.reboot.count() != 0 {
		t.Errorf("rebooted after an incomplete update")
	}
}

func TestIdentificationFailure(t *testing.T) {
	r := newRig(t, "containers", "software")
	r.domains["software"].FailOn("IDENTIFY", "package repository unreachable")
	startManager(t, r.o, r.config(), r.reboot)
	r.apply("act-i", desired(map[string]map[string]string{"containers": {"a": "1"}, "software": {"p": "1"}}))
	final := r.o.waitFinal("act-i")
	if final.Feedback.Status != updateapi.StatusIdentificationFailed || final.Feedback.Message != "[software]: package repository unreachable" {
		t.Errorf("final %s %q", final.Feedback.Status, final.Feedback.Message)
	}
	for _, d := range r.domains {
		if calls := d.Calls(); len(calls) != 0 {
			t.Errorf("%s got commands %v", d.Name, calls)
		}
	}
}

func TestConsentDeniedRollsBack(t *testing.T) {
	r := newRig(t, "containers", "software")
	cfg := r.config()
	cfg.OwnerConsentCommands = []string{"ACTIVATE"}
	startManager(t, r.o, cfg, r.reboot)
	r.apply("act-c", desired(map[string]map[string]string{"containers": {"a": "1"}, "software": {"p": "1"}}))
	r.o.waitUntil("consent request", func(ms []observed) bool {
		return slices.ContainsFunc(ms, func(m observed) bool { return m.Topic == "deviceupdate/ownerconsent" && m.Env.ActivityID == "act-c" })
	})
	// Feedback for another activity is ignored.
	r.o.publish("deviceupdate/ownerconsentfeedback", "other", updateapi.OwnerConsentFeedback{Status: updateapi.ConsentApproved})
	r.o.publish("deviceupdate/ownerconsentfeedback", "act-c", updateapi.OwnerConsentFeedback{Status: updateapi.ConsentDenied})
	final := r.o.waitFinal("act-c")
	if final.Feedback.Status != updateapi.StatusIncomplete || !strings.Contains(final.Feedback.Message, "owner consent denied for ACTIVATE") {
		t.Errorf("final %s %q", final.Feedback.Status, final.Feedback.Message)
	}
	ms := r.o.waitUntil("agents done", func(ms []observed) bool {
		return slices.Contains(statuses(ms, "softwareupdate", "act-c"), "COMPLETED") && slices.Contains(statuses(ms, "containersupdate", "act-c"), "COMPLETED")
	})
	want := []S{"IDENTIFYING", "IDENTIFIED", "DOWNLOADING", "DOWNLOAD_SUCCESS", "UPDATING", "UPDATE_SUCCESS", "ROLLBACK", "ROLLBACK_SUCCESS", "CLEANUP_SUCCESS", "COMPLETED"}
	for _, d := range []string{"containers", "software"} {
		if diff := cmp.Diff(want, statuses(ms, d+"update", "act-c")); diff != "" {
			t.Errorf("%s (-want +got):\n%s", d, diff)
		}
		if got := r.domains[d].Calls(); !slices.Equal(got, []updateapi.CommandType{"DOWNLOAD", "UPDATE", "ROLLBACK", "CLEANUP"}) {
			t.Errorf("%s commands %v", d, got)
		}
	}
}

func TestConsentDeniedForDownloadSendsNothing(t *testing.T) {
	r := newRig(t, "containers")
	cfg := r.config()
	cfg.OwnerConsentCommands = []string{"DOWNLOAD"}
	startManager(t, r.o, cfg, r.reboot)
	r.apply("act-d", desired(map[string]map[string]string{"containers": {"a": "1"}}))
	r.o.waitUntil("consent request", func(ms []observed) bool {
		return slices.ContainsFunc(ms, func(m observed) bool { return m.Topic == "deviceupdate/ownerconsent" && m.Env.ActivityID == "act-d" })
	})
	r.o.publish("deviceupdate/ownerconsentfeedback", "act-d", updateapi.OwnerConsentFeedback{Status: updateapi.ConsentDenied})
	final := r.o.waitFinal("act-d")
	if final.Feedback.Status != updateapi.StatusIncomplete {
		t.Errorf("final %s", final.Feedback.Status)
	}
	if calls := r.domains["containers"].Calls(); len(calls) != 0 {
		t.Errorf("commands sent: %v", calls)
	}
}

func TestConsentApproved(t *testing.T) {
	r := newRig(t, "containers")
	cfg := r.config()
	cfg.OwnerConsentCommands = []string{"DOWNLOAD", "UPDATE"}
	startManager(t, r.o, cfg, r.reboot)
	r.apply("act-a", desired(map[string]map[string]string{"containers": {"a": "1"}}))
	for i := 1; i <= 2; i++ {
		r.o.waitUntil("consent request", func(ms []observed) bool {
			n := 0
			for _, m := range ms {
				if m.Topic == "deviceupdate/ownerconsent" && m.Env.ActivityID == "act-a" {
					n++
				}
			}
			return n >= i
		})
		r.o.publish("deviceupdate/ownerconsentfeedback", "act-a", updateapi.OwnerConsentFeedback{Status: updateapi.ConsentApproved})
	}
	if final := r.o.waitFinal("act-a"); final.Feedback.Status != updateapi.StatusCompleted {
		t.Errorf("final %s %q", final.Feedback.Status, final.Feedback.Message)
	}
}

func TestPhaseTimeout(t *testing.T) {
	r := newRig(t, "containers", "software")
	release := r.domains["software"].Hold(updateapi.CommandDownload)
	defer release()
	cfg := r.config()
	cfg.PhaseTimeout = updatemanager.Duration(time.Second)
	startManager(t, r.o, cfg, r.reboot)
	r.apply("act-t", desired(map[string]map[string]string{"containers": {"a": "1"}, "software": {"p": "1"}}))
	final := r.o.waitFinal("act-t")
	if final.Feedback.Status != updateapi.StatusIncomplete ||
		final.Feedback.Message != "the update process is incompleted: DOWNLOAD feedback of [containers, software] not received in 1s" {
		t.Errorf("final %s %q", final.Feedback.Status, final.Feedback.Message)
	}
}

func TestOneActivityAtATime(t *testing.T) {
	r := newRig(t, "containers")
	release := r.domains["containers"].Hold(updateapi.CommandDownload)
	startManager(t, r.o, r.config(), r.reboot)
	r.apply("first", desired(map[string]map[string]string{"containers": {"a": "1"}}))
	r.o.waitAgentStatus("containers", "first", updateapi.BaselineDownloading)
	r.apply("second", desired(map[string]map[string]string{"containers": {"b": "1"}}))
	second := r.o.waitFinal("second")
	if second.Feedback.Status != updateapi.StatusIdentificationFailed || second.Feedback.Message != "Another update activity in progress - first" {
		t.Errorf("second: %s %q", second.Feedback.Status, second.Feedback.Message)
	}
	release()
	if first := r.o.waitFinal("first"); first.Feedback.Status != updateapi.StatusCompleted {
		t.Errorf("first: %s %q", first.Feedback.Status, first.Feedback.Message)
	}
}

func TestBadDesiredStates(t *testing.T) {
	r := newRig(t, "containers")
	startManager(t, r.o, r.config(), r.reboot)
	huge := `{"activityId":"huge","timestamp":1,"payload":{"domains":[{"id":"containers","components":[{"id":"x","version":"` + strings.Repeat("v", updateapi.MaxMessageSize) + `"}]}]}}`
	for _, tc := range []struct{ id, payload, want string }{
		{"bad-json", `{"activityId":"bad-json","payload":{"domains":[{"id":"containers",}]}}`, "not valid JSON"},
		{"unknown", `{"activityId":"unknown","payload":{"domains":[{"id":"containers"},{"id":"toaster","components":[{"id":"a"}]}]}}`, "unknown domain toaster"},
		{"dup", `{"activityId":"dup","payload":{"domains":[{"id":"containers","components":[{"id":"a","version":"1"},{"id":"a","version":"2"}]}]}}`, `duplicate component "a"`},
		{"missing", `{"activityId":"missing","payload":null}`, "desired state is missing"},
		{"huge", huge, "too large"},
	} {
		r.o.publishRaw("deviceupdate/desiredstate", []byte(tc.payload))
		f := r.o.waitFinal(tc.id)
		if f.Feedback.Status != updateapi.StatusIdentificationFailed || !strings.Contains(f.Feedback.Message, tc.want) {
			t.Errorf("%s: got %s %q, want IDENTIFICATION_FAILED with %q", tc.id, f.Feedback.Status, f.Feedback.Message, tc.want)
		}
	}
	// Nothing reached an agent, and the manager still works.
	r.apply("good", desired(map[string]map[string]string{"containers": {"a": "1"}}))
	if f := r.o.waitFinal("good"); f.Feedback.Status != updateapi.StatusCompleted {
		t.Errorf("good: %s %q", f.Feedback.Status, f.Feedback.Message)
	}
	r.o.mu.Lock()
	defer r.o.mu.Unlock()
	for _, m := range r.o.ms {
		if m.Topic == "containersupdate/desiredstate" && m.Env.ActivityID != "good" {
			t.Errorf("agent got desired state of %q", m.Env.ActivityID)
		}
	}
}

func TestRefresh(t *testing.T) {
	r := newRig(t, "containers", "software")
	startManager(t, r.o, r.config(), r.reboot)
	r.o.publish("deviceupdate/currentstate/get", "ref-1", nil)
	ms := r.o.waitUntil("refresh answer", func(ms []observed) bool {
		return slices.ContainsFunc(ms, func(m observed) bool { return m.Topic == "deviceupdate/currentstate" && m.Env.ActivityID == "ref-1" })
	})
	inv := currentState(t, ms, "ref-1")
	want := []updateapi.Association{
		{SourceID: "device-update-manager", TargetID: "containers-update-agent"},
		{SourceID: "containers-update-agent", TargetID: "containers:old"},
		{SourceID: "device-update-manager", TargetID: "software-update-agent"},
		{SourceID: "software-update-agent", TargetID: "software:old"},
	}
	if diff := cmp.Diff(want, inv.Associations); diff != "" {
		t.Errorf("associations (-want +got):\n%s", diff)
	}
}

// TestMain lets the test binary act as a child manager or agent.
func TestMain(m *testing.M) {
	os.Exit(m.Run())
}
