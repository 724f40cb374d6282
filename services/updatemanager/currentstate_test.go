package updatemanager

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/services/internal/updateapi"
)

// csCloud records the current states the manager publishes; published
// gets a value per publication.
type csCloud struct {
	mu        sync.Mutex
	cs        []csReport
	published chan struct{}
}

type csReport struct {
	ActivityID string
	Nodes      []string // software nodes as id@version
}

func newCSCloud() *csCloud { return &csCloud{published: make(chan struct{}, 16)} }

func (c *csCloud) Feedback(context.Context, string, updateapi.Feedback) {}
func (c *csCloud) Consent(context.Context, string, updateapi.CommandType) error {
	return nil
}

func (c *csCloud) CurrentState(_ context.Context, activityID string, inv updateapi.Inventory) {
	r := csReport{ActivityID: activityID}
	for _, n := range inv.SoftwareNodes {
		r.Nodes = append(r.Nodes, n.ID+"@"+n.Version)
	}
	c.mu.Lock()
	c.cs = append(c.cs, r)
	c.mu.Unlock()
	select {
	case c.published <- struct{}{}:
	default:
	}
}

func (c *csCloud) reports() []csReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]csReport(nil), c.cs...)
}

// csAgents records current state requests and never answers them.
type csAgents struct {
	mu       sync.Mutex
	requests []string // domain/activityID
}

func (a *csAgents) SendDesiredState(context.Context, string, string, *updateapi.DesiredState) error {
	return nil
}
func (a *csAgents) SendCommand(context.Context, string, string, updateapi.CommandType) error {
	return nil
}
func (a *csAgents) RequestCurrentState(_ context.Context, domain, activityID string) error {
	a.mu.Lock()
	a.requests = append(a.requests, domain+"/"+activityID)
	a.mu.Unlock()
	return nil
}

// agentState is a domain agent's currentstate message: one component of
// the given version, stamped at ms.
func agentState(t *testing.T, domain, activityID, version string, ms int64) []byte {
	t.Helper()
	inv := updateapi.Inventory{SoftwareNodes: []updateapi.SoftwareNode{{ID: domain + ":app", Version: version}}}
	b, err := updateapi.NewEnvelope(activityID, time.UnixMilli(ms), inv)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// csManager is a manager driven by hand: the test calls handle and fires
// the timers' events itself. The real timers are an hour long, so they
// never fire during a test.
func csManager(delay Duration, domains ...string) (*Manager, *csCloud, *csAgents) {
	cfg := Defaults()
	cfg.CurrentStateDelay = delay
	cfg.Agents = map[string]*AgentConfig{}
	for _, d := range domains {
		cfg.Agents[d] = &AgentConfig{ReadTimeout: Duration(time.Hour)}
	}
	cloud, agents := newCSCloud(), &csAgents{}
	m := NewManager(cfg, Deps{Cloud: cloud, Agents: agents, Now: func() time.Time { return time.UnixMilli(1_000_000) }})
	m.ctx = context.Background()
	return m, cloud, agents
}

func deliver(m *Manager, domain string, payload []byte) {
	m.handle(event{kind: "currentstate", domain: domain, payload: payload})
}

// Unsolicited current states are coalesced: the first one starts the
// currentStateDelay timer, later ones only replace the inventory, and the
// timer publishes the latest once (UM:api/agent/callback_current_state.go).
func TestUnsolicitedCurrentStateIsCoalesced(t *testing.T) {
	m, cloud, _ := csManager(Duration(time.Hour), "containers", "firmware")
	deliver(m, "containers", agentState(t, "containers", "", "1", 100))
	deliver(m, "firmware", agentState(t, "firmware", "initial-current-state-100", "1", 100))
	deliver(m, "containers", agentState(t, "containers", "", "2", 200))
	deliver(m, "containers", agentState(t, "containers", "", "3", 300))
	if got := cloud.reports(); len(got) != 0 {
		t.Fatalf("published before currentStateDelay passed: %+v", got)
	}
	gen := m.csGen
	m.handle(event{kind: "csTimer", gen: gen}) // currentStateDelay passed
	want := []csReport{{ActivityID: "", Nodes: []string{"device-update-manager@dev", "containers:app@3", "firmware:app@1"}}}
	if diff := cmp.Diff(want, cloud.reports()); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	m.handle(event{kind: "csTimer", gen: gen}) // a late duplicate: nothing
	if diff := cmp.Diff(want, cloud.reports()); diff != "" {
		t.Fatalf("after a duplicate timer (-want +got):\n%s", diff)
	}
	// The next report starts a new delay.
	deliver(m, "firmware", agentState(t, "firmware", "", "2", 400))
	if got := len(cloud.reports()); got != 1 {
		t.Fatalf("published at once after the delay had passed: %d reports", got)
	}
	m.handle(event{kind: "csTimer", gen: m.csGen})
	want = append(want, csReport{ActivityID: "", Nodes: []string{"device-update-manager@dev", "containers:app@3", "firmware:app@2"}})
	if diff := cmp.Diff(want, cloud.reports()); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

// With currentStateDelay 0 every unsolicited current state is published
// at once.
func TestUnsolicitedCurrentStateWithoutDelay(t *testing.T) {
	m, cloud, _ := csManager(0, "containers")
	deliver(m, "containers", agentState(t, "containers", "", "1", 100))
	deliver(m, "containers", agentState(t, "containers", "", "2", 200))
	want := []csReport{
		{Nodes: []string{"device-update-manager@dev", "containers:app@1"}},
		{Nodes: []string{"device-update-manager@dev", "containers:app@2"}},
	}
	if diff := cmp.Diff(want, cloud.reports()); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

// A refresh asks every agent; one that stays silent past its readTimeout
// is reported with its last known inventory. The refresh also supersedes
// a pending delayed report.
func TestRefreshReportsSilentAgentWithLastKnownInventory(t *testing.T) {
	m, cloud, agents := csManager(Duration(time.Hour), "containers", "firmware")
	deliver(m, "firmware", agentState(t, "firmware", "", "1.0", 100))
	deliver(m, "containers", agentState(t, "containers", "", "1", 100))
	pending := m.csGen
	m.handle(event{kind: "refresh", activityID: "ref-1"})
	if diff := cmp.Diff([]string{"containers/ref-1", "firmware/ref-1"}, agents.requests); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	deliver(m, "containers", agentState(t, "containers", "ref-1", "2", 200))
	if got := cloud.reports(); len(got) != 0 {
		t.Fatalf("published while firmware may still answer: %+v", got)
	}
	r := m.refreshes["ref-1"]
	if r == nil {
		t.Fatal("no refresh in progress")
	}
	m.handle(event{kind: "refreshTimeout", activityID: "ref-1", gen: r.gen}) // readTimeout passed
	want := []csReport{{ActivityID: "ref-1", Nodes: []string{"device-update-manager@dev", "containers:app@2", "firmware:app@1.0"}}}
	if diff := cmp.Diff(want, cloud.reports()); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	// The superseded delayed report and a repeated timeout send nothing.
	m.handle(event{kind: "csTimer", gen: pending})
	m.handle(event{kind: "refreshTimeout", activityID: "ref-1", gen: r.gen})
	// firmware's late answer is kept as an unsolicited report.
	deliver(m, "firmware", agentState(t, "firmware", "ref-1", "1.0", 300))
	if diff := cmp.Diff(want, cloud.reports()); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

// The same with the manager's own timer: Run posts the refresh timeout
// after readTimeout, and the result goes out with the last known
// inventory of the silent agent. The test waits for the publication, not
// for a time.
func TestRefreshTimeoutFiresInRun(t *testing.T) {
	cfg := Defaults()
	cfg.CurrentStateDelay = 0
	cfg.Agents = map[string]*AgentConfig{"firmware": {ReadTimeout: Duration(50 * time.Millisecond)}}
	cloud, agents := newCSCloud(), &csAgents{}
	m := NewManager(cfg, Deps{Cloud: cloud, Agents: agents})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	wait := func(n int) []csReport {
		t.Helper()
		deadline := time.After(time.Minute)
		for {
			if got := cloud.reports(); len(got) >= n {
				return got
			}
			select {
			case <-cloud.published:
			case <-deadline:
				t.Fatalf("timed out waiting for %d current states; got %+v", n, cloud.reports())
			}
		}
	}
	// The initial refresh at start: nobody answers.
	got := wait(1)
	if diff := cmp.Diff([]string{"device-update-manager@dev"}, got[0].Nodes); diff != "" {
		t.Errorf("initial (-want +got):\n%s", diff)
	}
	m.AgentCurrentState("firmware", agentState(t, "firmware", "", "1.0", 100)) // published at once (delay 0)
	wait(2)
	m.Refresh("ref-2")
	got = wait(3)
	want := csReport{ActivityID: "ref-2", Nodes: []string{"device-update-manager@dev", "firmware:app@1.0"}}
	if diff := cmp.Diff(want, got[2]); diff != "" {
		t.Errorf("refresh (-want +got):\n%s", diff)
	}
}

// A current state stamped before the one held is dropped: it changes
// neither the inventory nor triggers a publication. One stamped the same
// is accepted.
func TestStaleCurrentStateIsDropped(t *testing.T) {
	m, cloud, _ := csManager(0, "containers")
	deliver(m, "containers", agentState(t, "containers", "", "2", 2000))
	deliver(m, "containers", agentState(t, "containers", "", "1", 1999)) // stale
	want := []csReport{{Nodes: []string{"device-update-manager@dev", "containers:app@2"}}}
	if diff := cmp.Diff(want, cloud.reports()); diff != "" {
		t.Fatalf("after a stale report (-want +got):\n%s", diff)
	}
	if got := m.inv["containers"].inv.SoftwareNodes[0].Version; got != "2" {
		t.Errorf("held version %q after a stale report, want 2", got)
	}
	deliver(m, "containers", agentState(t, "containers", "", "3", 2000)) // same time: accepted
	want = append(want, csReport{Nodes: []string{"device-update-manager@dev", "containers:app@3"}})
	if diff := cmp.Diff(want, cloud.reports()); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	// A stale answer to a refresh is dropped too: the refresh reports
	// what is held.
	m.handle(event{kind: "refresh", activityID: "ref-s"})
	deliver(m, "containers", agentState(t, "containers", "ref-s", "0.9", 1000))
	m.handle(event{kind: "refreshTimeout", activityID: "ref-s", gen: m.refreshes["ref-s"].gen})
	want = append(want, csReport{ActivityID: "ref-s", Nodes: []string{"device-update-manager@dev", "containers:app@3"}})
	if diff := cmp.Diff(want, cloud.reports()); diff != "" {
		t.Fatalf("refresh (-want +got):\n%s", diff)
	}
}
