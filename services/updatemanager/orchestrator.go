package updatemanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kantofw/kanto/services/internal/store"
	"github.com/kantofw/kanto/services/internal/updateapi"
)

// Cloud is the manager's face towards the backend: plain MQTT topics
// (<domain>update/...) or the Ditto UpdateManager feature.
type Cloud interface {
	Feedback(ctx context.Context, activityID string, f updateapi.Feedback)
	CurrentState(ctx context.Context, activityID string, inv updateapi.Inventory)
	// Consent asks the owner to approve cmd; the answer comes back through
	// Manager.ConsentFeedback.
	Consent(ctx context.Context, activityID string, cmd updateapi.CommandType) error
}

// Agents sends to the domain agents.
type Agents interface {
	SendDesiredState(ctx context.Context, domain, activityID string, ds *updateapi.DesiredState) error
	SendCommand(ctx context.Context, domain, activityID string, cmd updateapi.CommandType) error
	RequestCurrentState(ctx context.Context, domain, activityID string) error
}

// Rebooter restarts the device. The board package provides the real one;
// Reboot returns only on failure (or in tests).
type Rebooter interface {
	Reboot(ctx context.Context) error
}

// Manager orchestrates desired states across domain agents. All state is
// owned by the goroutine running Run; the exported entry points only post
// events to it.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	db     *store.DB
	cloud  Cloud
	agents Agents
	reboot Rebooter
	now    func() time.Time

	events  chan event
	stopped chan struct{} // closed when Run returns; late timers drop their events

	// Owned by Run.
	c          *campaign
	inv        map[string]*domainInventory
	refreshes  map[string]*refresh
	phaseGen   int
	consentGen int
	runGen     int
	running    bool   // a RUNNING report timer is active
	lastRun    string // actions of the last RUNNING report
	csGen      int
	csPending  bool
	refreshGen int
	ctx        context.Context
}

type domainInventory struct {
	inv updateapi.Inventory
	ts  int64
}

type refresh struct {
	waiting map[string]bool
	gen     int
}

type event struct {
	kind       string
	activityID string
	domain     string
	payload    []byte
	env        *updateapi.Envelope
	status     updateapi.ConsentStatus
	gen        int
}

// Deps are the manager's collaborators.
type Deps struct {
	Cloud  Cloud
	Agents Agents
	Reboot Rebooter
	DB     *store.DB // nil: no persistence
	Log    *slog.Logger
	Now    func() time.Time
}

// NewManager returns a manager; Run drives it.
func NewManager(cfg Config, d Deps) *Manager {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return &Manager{
		cfg: cfg, log: d.Log, db: d.DB, cloud: d.Cloud, agents: d.Agents, reboot: d.Reboot, now: d.Now,
		events: make(chan event, 256), stopped: make(chan struct{}), inv: map[string]*domainInventory{}, refreshes: map[string]*refresh{},
	}
}

func (m *Manager) post(e event) {
	select {
	case m.events <- e:
	case <-m.stopped:
	}
}

// Apply hands a desired state message (the whole envelope) to the manager.
func (m *Manager) Apply(payload []byte) { m.post(event{kind: "apply", payload: payload}) }

// ApplyParsed hands a desired state with its activity ID (Ditto face).
func (m *Manager) ApplyParsed(activityID string, desired json.RawMessage) {
	m.post(event{kind: "apply", env: &updateapi.Envelope{ActivityID: activityID, Payload: desired}})
}

// Refresh asks every agent for its current state and publishes the result
// under activityID.
func (m *Manager) Refresh(activityID string) { m.post(event{kind: "refresh", activityID: activityID}) }

// ConsentFeedback delivers the owner's answer.
func (m *Manager) ConsentFeedback(activityID string, st updateapi.ConsentStatus) {
	m.post(event{kind: "consent", activityID: activityID, status: st})
}

// AgentFeedback delivers a desiredstatefeedback message of domain.
func (m *Manager) AgentFeedback(domain string, payload []byte) {
	m.post(event{kind: "feedback", domain: domain, payload: payload})
}

// AgentCurrentState delivers a currentstate message of domain.
func (m *Manager) AgentCurrentState(domain string, payload []byte) {
	m.post(event{kind: "currentstate", domain: domain, payload: payload})
}

// Run loads a persisted campaign, asks agents for their current state and
// handles events until ctx ends. A running campaign is kept for the next
// start (upstream reports INCOMPLETE "terminated"; we resume instead).
func (m *Manager) Run(ctx context.Context) error {
	m.ctx = ctx
	defer close(m.stopped)
	c, err := loadCampaign(m.db)
	if err != nil {
		return err
	}
	m.startRefresh(InitialActivityID(m.now()))
	if c != nil {
		m.c = c
		m.resume()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-m.events:
			m.handle(e)
		}
	}
}

// InitialActivityID is the activity ID of a start-up current state request.
func InitialActivityID(now time.Time) string {
	return "initial-current-state-" + strconv.FormatInt(now.UnixMilli(), 10)
}

func (m *Manager) handle(e event) {
	switch e.kind {
	case "apply":
		m.onApply(e)
	case "refresh":
		m.startRefresh(e.activityID)
	case "consent":
		m.onConsent(e.activityID, e.status)
	case "feedback":
		m.onFeedback(e.domain, e.payload)
	case "currentstate":
		m.onCurrentState(e.domain, e.payload)
	case "phaseTimeout":
		if m.c != nil && e.gen == m.phaseGen {
			m.onPhaseTimeout()
		}
	case "consentTimeout":
		if m.c != nil && e.gen == m.consentGen && m.c.Consent != "" {
			m.onConsent(m.c.ActivityID, "TIMEOUT")
		}
	case "runTimer":
		if e.gen == m.runGen {
			m.running = false
			if m.c != nil && m.c.Status == updateapi.StatusRunning {
				if acts := m.actionsKey(); acts != m.lastRun {
					m.publishRunning()
				}
			}
		}
	case "csTimer":
		if e.gen == m.csGen && m.csPending {
			m.csPending = false
			m.cloud.CurrentState(m.ctx, "", m.inventory())
		}
	case "refreshTimeout":
		if r := m.refreshes[e.activityID]; r != nil && r.gen == e.gen {
			m.log.Warn("current state not received in time, using the last known", "activityId", e.activityID, "domains", keys(r.waiting))
			m.finishRefresh(e.activityID)
		}
	case "reboot":
		m.doReboot()
	}
}

func (m *Manager) onApply(e event) {
	env := e.env
	if env == nil {
		var err error
		env, err = updateapi.ParseEnvelope(e.payload)
		if err != nil {
			m.cloud.Feedback(m.ctx, updateapi.PeekActivityID(e.payload), updateapi.Feedback{Status: updateapi.StatusIdentificationFailed, Message: err.Error()})
			return
		}
	}
	id := env.ActivityID
	if m.c != nil {
		if m.c.ActivityID == id {
			m.republish()
			return
		}
		m.cloud.Feedback(m.ctx, id, updateapi.Feedback{Status: updateapi.StatusIdentificationFailed,
			Message: "Another update activity in progress - " + m.c.ActivityID})
		return
	}
	if id == "" {
		m.cloud.Feedback(m.ctx, id, updateapi.Feedback{Status: updateapi.StatusIdentificationFailed, Message: "the activityId is missing"})
		return
	}
	ds, err := updateapi.ParseDesiredState(env.Payload)
	if err == nil {
		err = m.checkDomains(ds)
	}
	if err != nil {
		m.cloud.Feedback(m.ctx, id, updateapi.Feedback{Status: updateapi.StatusIdentificationFailed, Message: err.Error()})
		return
	}
	if len(ds.Domains) == 0 {
		// Upstream sends this INCOMPLETE with an empty activityId (QUIRK);
		// we keep the activity's ID so the backend can match it.
		m.cloud.Feedback(m.ctx, id, updateapi.Feedback{Status: updateapi.StatusIncomplete,
			Message: "the desired state manifest does not contain any supported domain"})
		return
	}
	c := &campaign{ActivityID: id, Domains: map[string]*domainState{}, Phase: phaseIdentify, Status: updateapi.StatusIdentifying}
	for name, part := range ds.SplitPerDomains() {
		c.Domains[name] = &domainState{Status: updateapi.StatusIdentifying, Part: part}
	}
	m.c = c
	m.save()
	m.cloud.Feedback(m.ctx, id, updateapi.Feedback{Status: updateapi.StatusIdentifying})
	m.armPhaseTimer()
	for _, n := range c.names() {
		if err := m.agents.SendDesiredState(m.ctx, n, id, c.Domains[n].Part); err != nil {
			m.log.Warn("send desired state", "domain", n, "err", err)
		}
	}
}

// checkDomains refuses a desired state naming a domain without an agent.
// Upstream skips such domains with a warning and applies the rest; a
// campaign that silently does less than asked is worse than one refused, so
// we refuse it as a whole and apply nothing.
func (m *Manager) checkDomains(ds *updateapi.DesiredState) error {
	var unknown []string
	for _, d := range ds.Domains {
		if m.cfg.Agents[d.ID] == nil {
			unknown = append(unknown, d.ID)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("unknown domain %s: no such domain agent is configured (have %s): %w",
			strings.Join(unknown, ", "), strings.Join(m.cfg.agentNames(), ", "), updateapi.ErrInvalid)
	}
	return nil
}

func (m *Manager) onFeedback(domain string, payload []byte) {
	env, err := updateapi.ParseEnvelope(payload)
	if err != nil {
		m.log.Warn("dropping agent feedback", "domain", domain, "err", err)
		return
	}
	c := m.c
	if c == nil || env.ActivityID != c.ActivityID {
		m.log.Debug("feedback for another activity", "domain", domain, "activityId", env.ActivityID)
		return
	}
	ds := c.Domains[domain]
	if ds == nil || ds.Done {
		return
	}
	f, err := updateapi.ParseFeedback(env.Payload)
	if err != nil {
		m.log.Warn("dropping agent feedback", "domain", domain, "err", err)
		return
	}
	if len(f.Actions) > 0 {
		ds.Actions = f.Actions
	}
	accept := func(phase updateapi.CommandType, from ...updateapi.Status) bool {
		return c.Phase == phase && slices.Contains(from, ds.Status)
	}
	changed := true
	switch f.Status {
	case updateapi.StatusIdentified:
		if !accept(phaseIdentify, updateapi.StatusIdentifying) {
			return
		}
		ds.Status, ds.HasActions = f.Status, len(f.Actions) > 0
		ds.Done = !ds.HasActions
	case updateapi.StatusIdentificationFailed:
		if !accept(phaseIdentify, updateapi.StatusIdentifying) {
			return
		}
		ds.Status, ds.Message = f.Status, f.Message
	case updateapi.BaselineDownloading, updateapi.BaselineUpdating, updateapi.BaselineActivating, updateapi.BaselineRollback, updateapi.BaselineCleanup:
		changed = false
		m.save()
		m.reportRunning()
	case updateapi.BaselineDownloadSuccess:
		changed = accept(updateapi.CommandDownload, updateapi.StatusIdentified)
	case updateapi.BaselineUpdateSuccess:
		changed = accept(updateapi.CommandUpdate, updateapi.BaselineDownloadSuccess)
	case updateapi.BaselineActivationSuccess:
		changed = accept(updateapi.CommandActivate, updateapi.BaselineUpdateSuccess)
	case updateapi.BaselineRollbackSuccess:
		changed = accept(updateapi.CommandRollback, updateapi.BaselineDownloadSuccess, updateapi.BaselineUpdateSuccess)
	case updateapi.BaselineDownloadFailure, updateapi.BaselineUpdateFailure, updateapi.BaselineActivationFailure, updateapi.BaselineRollbackFailure:
		if !slices.Contains([]updateapi.Status{updateapi.StatusIdentified, updateapi.BaselineDownloadSuccess, updateapi.BaselineUpdateSuccess}, ds.Status) {
			return
		}
		// Only the failing domain is cleaned up now; the others go on.
		ds.Status, ds.Message = f.Status, f.Message
		m.latch(domain, f.Message)
		m.save()
		if err := m.agents.SendCommand(m.ctx, domain, c.ActivityID, updateapi.CommandCleanup); err != nil {
			m.log.Warn("send cleanup", "domain", domain, "err", err)
		}
		m.reportRunning()
		// Upstream skips the barrier check here (QUIRK: when the failing
		// domain was the last one in the phase, the others wait for the
		// phase timeout). We check it, so they go on at once.
		m.advance()
		return
	case updateapi.BaselineCleanupSuccess, updateapi.StatusCompleted:
		if c.Phase == phaseIdentify {
			return
		}
		ds.Done = true
	case updateapi.StatusIncomplete:
		if c.Phase == phaseIdentify {
			return
		}
		ds.Done = true
		m.latch(domain, f.Message)
	case updateapi.BaselineCleanupFailure:
		// As upstream: the domain is done and INCOMPLETE is not latched.
		ds.Done = true
	default:
		m.log.Warn("ignoring feedback status", "domain", domain, "status", f.Status)
		return
	}
	if !changed {
		return
	}
	switch f.Status {
	case updateapi.BaselineDownloadSuccess, updateapi.BaselineUpdateSuccess, updateapi.BaselineActivationSuccess, updateapi.BaselineRollbackSuccess:
		ds.Status = f.Status
		m.reportRunning()
	}
	m.save()
	m.advance()
}

func (m *Manager) latch(domain, msg string) {
	m.c.Incomplete = true
	if msg != "" {
		m.c.Reasons = append(m.c.Reasons, "["+domain+"]: "+msg)
	}
}

// phase barriers: statuses still in progress, and the success status that
// makes a domain take the next command.
var barriers = map[updateapi.CommandType]struct {
	pending []updateapi.Status
	success []updateapi.Status
	next    updateapi.CommandType
}{
	updateapi.CommandDownload: {[]updateapi.Status{updateapi.StatusIdentified, updateapi.BaselineDownloading}, []updateapi.Status{updateapi.BaselineDownloadSuccess}, updateapi.CommandUpdate},
	updateapi.CommandUpdate:   {[]updateapi.Status{updateapi.BaselineDownloadSuccess, updateapi.BaselineUpdating}, []updateapi.Status{updateapi.BaselineUpdateSuccess}, updateapi.CommandActivate},
	updateapi.CommandActivate: {[]updateapi.Status{updateapi.BaselineUpdateSuccess, updateapi.BaselineActivating}, []updateapi.Status{updateapi.BaselineActivationSuccess}, updateapi.CommandCleanup},
	updateapi.CommandRollback: {[]updateapi.Status{updateapi.BaselineDownloadSuccess, updateapi.BaselineUpdateSuccess, updateapi.BaselineRollback},
		[]updateapi.Status{updateapi.BaselineRollbackSuccess, updateapi.BaselineActivationSuccess}, updateapi.CommandCleanup},
}

// advance runs the barrier of the current phase and ends the activity when
// every domain is done.
func (m *Manager) advance() {
	c := m.c
	if c == nil {
		return
	}
	if c.Consent != "" {
		return // waiting for the owner
	}
	switch c.Phase {
	case phaseIdentify:
		var failed []string
		for _, n := range c.names() {
			d := c.Domains[n]
			switch d.Status {
			case updateapi.StatusIdentifying:
				return
			case updateapi.StatusIdentificationFailed:
				failed = append(failed, "["+n+"]: "+d.Message)
			}
		}
		if len(failed) > 0 {
			m.finish(updateapi.StatusIdentificationFailed, strings.Join(failed, "; "))
			return
		}
		c.Status = updateapi.StatusIdentified
		m.save()
		m.cloud.Feedback(m.ctx, c.ActivityID, updateapi.Feedback{Status: updateapi.StatusIdentified, Actions: c.actions()})
		targets := m.domainsIn(updateapi.StatusIdentified)
		if len(targets) == 0 {
			m.finish(updateapi.StatusCompleted, "")
			return
		}
		c.Status = updateapi.StatusRunning
		m.reportRunning()
		m.send(updateapi.CommandDownload, targets)
	case updateapi.CommandDownload, updateapi.CommandUpdate, updateapi.CommandActivate, updateapi.CommandRollback:
		b := barriers[c.Phase]
		if len(m.domainsIn(b.pending...)) > 0 {
			return
		}
		targets := m.domainsIn(b.success...)
		if len(targets) == 0 {
			c.Phase = updateapi.CommandCleanup
			m.save()
			break
		}
		m.send(b.next, targets)
	}
	if m.c != nil && m.allDone() {
		if m.c.Incomplete {
			msg := "the update process is incompleted"
			if len(m.c.Reasons) > 0 {
				msg += ": " + strings.Join(m.c.Reasons, "; ")
			}
			m.finish(updateapi.StatusIncomplete, msg)
			return
		}
		m.finish(updateapi.StatusCompleted, "")
	}
}

func (m *Manager) allDone() bool {
	for _, d := range m.c.Domains {
		if !d.Done {
			return false
		}
	}
	return true
}

func (m *Manager) domainsIn(st ...updateapi.Status) []string {
	var out []string
	for _, n := range m.c.names() {
		d := m.c.Domains[n]
		if !d.Done && slices.Contains(st, d.Status) {
			out = append(out, n)
		}
	}
	return out
}

// send gives cmd to targets, asking the owner first if configured.
func (m *Manager) send(cmd updateapi.CommandType, targets []string) {
	c := m.c
	if slices.Contains(m.cfg.OwnerConsentCommands, string(cmd)) {
		c.Consent, c.ConsentTargets = cmd, targets
		m.save()
		m.consentGen++
		gen := m.consentGen
		time.AfterFunc(m.cfg.OwnerConsentTimeout.D(), func() { m.post(event{kind: "consentTimeout", gen: gen}) })
		if err := m.cloud.Consent(m.ctx, c.ActivityID, cmd); err != nil {
			m.log.Warn("owner consent request failed", "err", err)
			m.onConsent(c.ActivityID, "ERROR")
		}
		return
	}
	m.sendNow(cmd, targets)
}

func (m *Manager) sendNow(cmd updateapi.CommandType, targets []string) {
	c := m.c
	c.Phase = cmd
	m.save()
	m.armPhaseTimer()
	for _, n := range targets {
		if err := m.agents.SendCommand(m.ctx, n, c.ActivityID, cmd); err != nil {
			m.log.Warn("send command", "domain", n, "command", cmd, "err", err)
		}
	}
}

func (m *Manager) onConsent(activityID string, st updateapi.ConsentStatus) {
	c := m.c
	if c == nil || c.Consent == "" || activityID != c.ActivityID {
		m.log.Info("owner consent feedback ignored", "activityId", activityID)
		return
	}
	cmd, targets := c.Consent, c.ConsentTargets
	c.Consent, c.ConsentTargets = "", nil
	m.consentGen++
	if st == updateapi.ConsentApproved {
		m.sendNow(cmd, targets)
		return
	}
	why := "owner consent denied"
	if st != updateapi.ConsentDenied {
		why = "owner consent not given: " + strings.ToLower(string(st))
	}
	if cmd == updateapi.CommandDownload {
		// Nothing was changed yet: agents stay IDENTIFIED, as upstream.
		m.finish(updateapi.StatusIncomplete, "the update process is incompleted: "+why)
		return
	}
	c.Incomplete = true
	c.Reasons = append(c.Reasons, why+" for "+string(cmd))
	m.sendNow(updateapi.CommandRollback, m.domainsIn(updateapi.BaselineDownloadSuccess, updateapi.BaselineUpdateSuccess))
	m.advance()
}

func (m *Manager) onPhaseTimeout() {
	c := m.c
	if c.Phase == phaseIdentify {
		m.finish(updateapi.StatusIdentificationFailed, "identification feedback not received in "+m.cfg.PhaseTimeout.String())
		return
	}
	var slow []string
	for _, n := range c.names() {
		if !c.Domains[n].Done {
			slow = append(slow, n)
		}
	}
	m.finish(updateapi.StatusIncomplete, fmt.Sprintf("the update process is incompleted: %s feedback of [%s] not received in %s",
		c.Phase, strings.Join(slow, ", "), m.cfg.PhaseTimeout))
}

func (m *Manager) armPhaseTimer() {
	m.phaseGen++
	gen := m.phaseGen
	if m.cfg.PhaseTimeout <= 0 {
		return
	}
	time.AfterFunc(m.cfg.PhaseTimeout.D(), func() { m.post(event{kind: "phaseTimeout", gen: gen}) })
}

// finish publishes the final status and the current state, and reboots
// when a domain that needs it changed something.
func (m *Manager) finish(st updateapi.Status, msg string) {
	c := m.c
	m.c = nil
	m.phaseGen++
	m.consentGen++
	m.runGen++
	m.running = false
	if err := saveCampaign(m.db, nil); err != nil {
		m.log.Error("clear campaign", "err", err)
	}
	m.log.Info("activity finished", "activityId", c.ActivityID, "status", st, "message", msg)
	m.cloud.Feedback(m.ctx, c.ActivityID, updateapi.Feedback{Status: st, Message: msg, Actions: c.actions()})
	m.startRefresh(c.ActivityID)
	if st != updateapi.StatusCompleted {
		return
	}
	for n, d := range c.Domains {
		if a := m.cfg.Agents[n]; a != nil && a.RebootRequired && d.HasActions {
			if !m.cfg.RebootEnabled {
				m.log.Warn("a reboot is required but rebootEnabled is false", "domain", n)
				return
			}
			m.log.Info("rebooting", "after", m.cfg.RebootAfter, "domain", n)
			time.AfterFunc(m.cfg.RebootAfter.D(), func() { m.post(event{kind: "reboot"}) })
			return
		}
	}
}

func (m *Manager) doReboot() {
	if m.reboot == nil {
		m.log.Error("reboot required but no reboot hook is available")
		return
	}
	if err := m.reboot.Reboot(m.ctx); err != nil && !errors.Is(err, context.Canceled) {
		m.log.Error("reboot failed", "err", err)
	}
}

// resume continues a persisted campaign: report where it stands and ask
// again for what the barrier waits for (agents answer a repeat with their
// latest feedback).
func (m *Manager) resume() {
	c := m.c
	m.log.Info("resuming activity", "activityId", c.ActivityID, "phase", c.Phase, "status", c.Status)
	m.republish()
	if c.Consent != "" {
		cmd, targets := c.Consent, c.ConsentTargets
		c.Consent = ""
		m.send(cmd, targets)
		return
	}
	m.armPhaseTimer()
	for _, n := range c.names() {
		d := c.Domains[n]
		if d.Done {
			continue
		}
		var err error
		switch {
		case c.Phase == phaseIdentify:
			err = m.agents.SendDesiredState(m.ctx, n, c.ActivityID, d.Part)
		case c.Phase == updateapi.CommandCleanup || !slices.Contains(barriers[c.Phase].pending, d.Status):
			// Failed domains were sent CLEANUP; success ones wait.
			if !slices.Contains(barriers[c.Phase].success, d.Status) {
				err = m.agents.SendCommand(m.ctx, n, c.ActivityID, updateapi.CommandCleanup)
			}
		default:
			err = m.agents.SendCommand(m.ctx, n, c.ActivityID, c.Phase)
		}
		if err != nil {
			m.log.Warn("resend", "domain", n, "err", err)
		}
	}
	m.advance()
}

// republish sends the campaign's overall status again.
func (m *Manager) republish() {
	c := m.c
	if c.Status == updateapi.StatusRunning {
		m.running = false
		if m.cfg.ReportFeedbackInterval > 0 {
			m.publishRunning()
		}
		return
	}
	m.cloud.Feedback(m.ctx, c.ActivityID, updateapi.Feedback{Status: c.Status, Actions: c.actions()})
}

// reportRunning publishes RUNNING at once unless a report was sent within
// reportFeedbackInterval; then the timer sends the latest actions when it
// fires, if they changed (UM:api/agent/callback_desired_state_feedback.go).
func (m *Manager) reportRunning() {
	if m.c == nil || m.c.Status != updateapi.StatusRunning || m.cfg.ReportFeedbackInterval <= 0 || m.running {
		return
	}
	m.publishRunning()
}

func (m *Manager) publishRunning() {
	m.lastRun = m.actionsKey()
	m.cloud.Feedback(m.ctx, m.c.ActivityID, updateapi.Feedback{Status: updateapi.StatusRunning, Actions: m.c.actions()})
	if m.cfg.ReportFeedbackInterval <= 0 {
		return
	}
	m.running = true
	m.runGen++
	gen := m.runGen
	time.AfterFunc(m.cfg.ReportFeedbackInterval.D(), func() { m.post(event{kind: "runTimer", gen: gen}) })
}

func (m *Manager) actionsKey() string {
	if m.c == nil {
		return ""
	}
	b, _ := json.Marshal(m.c.actions())
	return string(b)
}

func (m *Manager) save() {
	if err := saveCampaign(m.db, m.c); err != nil {
		m.log.Error("persist campaign", "err", err)
	}
}

func keys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
