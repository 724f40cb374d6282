package updatemanager

import (
	"cmp"
	"strings"
	"time"

	"github.com/kantofw/kanto/services/internal/updateapi"
)

func (m *Manager) onCurrentState(domain string, payload []byte) {
	if m.cfg.Agents[domain] == nil {
		return
	}
	env, err := updateapi.ParseEnvelope(payload)
	if err != nil {
		m.log.Warn("dropping current state", "domain", domain, "err", err)
		return
	}
	inv, err := updateapi.ParseInventory(env.Payload)
	if err != nil {
		m.log.Warn("dropping current state", "domain", domain, "err", err)
		return
	}
	if old := m.inv[domain]; old != nil && env.Timestamp < old.ts {
		m.log.Debug("dropping stale current state", "domain", domain)
		return
	}
	m.inv[domain] = &domainInventory{inv: *inv, ts: env.Timestamp}
	if r := m.refreshes[env.ActivityID]; r != nil {
		delete(r.waiting, domain)
		if len(r.waiting) == 0 {
			m.finishRefresh(env.ActivityID)
		}
		return
	}
	if strings.HasPrefix(env.ActivityID, "initial-current-state-") || env.ActivityID == "" || m.c == nil || env.ActivityID != m.c.ActivityID {
		m.unsolicited()
	}
}

// unsolicited coalesces agent-initiated current states for currentStateDelay.
func (m *Manager) unsolicited() {
	if m.cfg.CurrentStateDelay <= 0 {
		m.cloud.CurrentState(m.ctx, "", m.inventory())
		return
	}
	if m.csPending {
		return
	}
	m.csPending = true
	m.csGen++
	gen := m.csGen
	time.AfterFunc(m.cfg.CurrentStateDelay.D(), func() { m.post(event{kind: "csTimer", gen: gen}) })
}

// startRefresh asks every agent for its current state under activityID;
// the result is published when all answered or the longest read timeout
// passed (then with the last known inventory of the silent ones).
func (m *Manager) startRefresh(activityID string) {
	r := &refresh{waiting: map[string]bool{}}
	var wait time.Duration
	for _, n := range m.cfg.agentNames() {
		r.waiting[n] = true
		wait = max(wait, m.cfg.Agents[n].ReadTimeout.D())
	}
	m.csGen++ // a pending delayed report is superseded
	m.csPending = false
	m.phaseGenRefresh(r)
	m.refreshes[activityID] = r
	for _, n := range m.cfg.agentNames() {
		if err := m.agents.RequestCurrentState(m.ctx, n, activityID); err != nil {
			m.log.Warn("current state request", "domain", n, "err", err)
		}
	}
	gen := r.gen
	time.AfterFunc(wait, func() { m.post(event{kind: "refreshTimeout", activityID: activityID, gen: gen}) })
}

func (m *Manager) phaseGenRefresh(r *refresh) {
	m.refreshGen++
	r.gen = m.refreshGen
}

func (m *Manager) finishRefresh(activityID string) {
	delete(m.refreshes, activityID)
	m.cloud.CurrentState(m.ctx, activityID, m.inventory())
}

// inventory aggregates the domains' inventories under the manager's own
// node, linking it to each domain's root: the first APPLICATION node with
// parameter domain=<d>, else the domain's first software node
// (UM:updatem/orchestration/update_manager_inventory.go). Domains are in
// name order, where upstream uses map order.
func (m *Manager) inventory() updateapi.Inventory {
	rootID := m.cfg.Domain + "-update-manager"
	out := updateapi.Inventory{SoftwareNodes: []updateapi.SoftwareNode{{
		ID: rootID, Version: cmp.Or(m.cfg.Version, "dev"), Name: "Update Manager", Type: updateapi.TypeApplication,
	}}}
	for _, n := range m.cfg.agentNames() {
		di := m.inv[n]
		if di == nil {
			continue
		}
		inv := di.inv
		out.HardwareNodes = append(out.HardwareNodes, inv.HardwareNodes...)
		out.SoftwareNodes = append(out.SoftwareNodes, inv.SoftwareNodes...)
		if root := domainRoot(n, inv.SoftwareNodes); root != "" {
			out.Associations = append(out.Associations, updateapi.Association{SourceID: rootID, TargetID: root})
		}
		out.Associations = append(out.Associations, inv.Associations...)
	}
	return out
}

func domainRoot(domain string, nodes []updateapi.SoftwareNode) string {
	for _, s := range nodes {
		if s.Type == updateapi.TypeApplication {
			if v, ok := updateapi.ConfigValue(s.Parameters, "domain"); ok && v == domain {
				return s.ID
			}
		}
	}
	if len(nodes) > 0 {
		return nodes[0].ID
	}
	return ""
}
