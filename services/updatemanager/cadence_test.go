package updatemanager

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/services/internal/updateapi"
)

type recCloud struct{ fb []updateapi.Feedback }

func (r *recCloud) Feedback(_ context.Context, _ string, f updateapi.Feedback) {
	r.fb = append(r.fb, f)
}
func (r *recCloud) CurrentState(context.Context, string, updateapi.Inventory) {}
func (r *recCloud) Consent(context.Context, string, updateapi.CommandType) error {
	return nil
}

type recAgents struct{ cmds []updateapi.CommandType }

func (r *recAgents) SendDesiredState(context.Context, string, string, *updateapi.DesiredState) error {
	return nil
}
func (r *recAgents) SendCommand(_ context.Context, _, _ string, c updateapi.CommandType) error {
	r.cmds = append(r.cmds, c)
	return nil
}
func (r *recAgents) RequestCurrentState(context.Context, string, string) error { return nil }

// The manager is event driven: the test hands events to handle directly,
// one at a time, and fires the report timer itself.
func TestRunningFeedbackCadence(t *testing.T) {
	cfg := Defaults()
	cfg.Agents = map[string]*AgentConfig{"containers": {ReadTimeout: DefaultReadTimeout}}
	cfg.ReportFeedbackInterval = Duration(time.Hour)
	cloud, agents := &recCloud{}, &recAgents{}
	m := NewManager(cfg, Deps{Cloud: cloud, Agents: agents})
	m.ctx = context.Background()
	env := func(id string, payload any) []byte { b, _ := updateapi.NewEnvelope(id, time.Now(), payload); return b }
	feedback := func(st updateapi.Status, progress int) {
		m.handle(event{kind: "feedback", domain: "containers", payload: env("a", updateapi.Feedback{Status: st, Actions: []updateapi.Action{
			{Component: updateapi.ComponentRef{ID: "containers:x", Version: "1"}, Status: updateapi.ActionDownloading, Progress: progress}}})})
	}
	ds := updateapi.DesiredState{Domains: []updateapi.Domain{{ID: "containers", Components: []updateapi.Component{{ID: "x", Version: "1"}}}}}
	m.handle(event{kind: "apply", payload: env("a", ds)})
	feedback(updateapi.StatusIdentified, 0)
	feedback(updateapi.BaselineDownloading, 10) // within the interval: held back
	feedback(updateapi.BaselineDownloading, 20)
	got := func() []string {
		var out []string
		for _, f := range cloud.fb {
			s := string(f.Status)
			if f.Status == updateapi.StatusRunning && len(f.Actions) > 0 {
				s += " " + string(rune('0'+f.Actions[0].Progress/10))
			}
			out = append(out, s)
		}
		return out
	}
	if diff := cmp.Diff([]string{"IDENTIFYING", "IDENTIFIED", "RUNNING 0"}, got()); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	m.handle(event{kind: "runTimer", gen: m.runGen}) // the interval passed: latest actions go out
	m.handle(event{kind: "runTimer", gen: m.runGen}) // unchanged since: nothing
	if diff := cmp.Diff([]string{"IDENTIFYING", "IDENTIFIED", "RUNNING 0", "RUNNING 2"}, got()); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	feedback(updateapi.BaselineDownloadSuccess, 100)
	if agents.cmds[len(agents.cmds)-1] != updateapi.CommandUpdate {
		t.Errorf("commands %v", agents.cmds)
	}
	// Persisted state round-trips.
	b, _ := json.Marshal(m.c)
	var c campaign
	if err := json.Unmarshal(b, &c); err != nil || c.Phase != updateapi.CommandUpdate {
		t.Errorf("campaign %s: %v", b, err)
	}
}

func TestNoRunningFeedbackWhenIntervalIsZero(t *testing.T) {
	cfg := Defaults()
	cfg.Agents = map[string]*AgentConfig{"containers": {ReadTimeout: DefaultReadTimeout}}
	cfg.ReportFeedbackInterval = 0
	cloud := &recCloud{}
	m := NewManager(cfg, Deps{Cloud: cloud, Agents: &recAgents{}})
	m.ctx = context.Background()
	env := func(payload any) []byte { b, _ := updateapi.NewEnvelope("a", time.Now(), payload); return b }
	m.handle(event{kind: "apply", payload: env(updateapi.DesiredState{Domains: []updateapi.Domain{{ID: "containers", Components: []updateapi.Component{{ID: "x"}}}}})})
	m.handle(event{kind: "feedback", domain: "containers", payload: env(updateapi.Feedback{Status: updateapi.StatusIdentified,
		Actions: []updateapi.Action{{Component: updateapi.ComponentRef{ID: "containers:x"}, Status: updateapi.ActionIdentified}}})})
	for _, f := range cloud.fb {
		if f.Status == updateapi.StatusRunning {
			t.Fatalf("RUNNING published with interval 0: %+v", cloud.fb)
		}
	}
}
