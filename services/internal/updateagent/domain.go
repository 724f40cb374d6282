// Package updateagent is the agent side of the Update Agent API, shared by
// every domain agent (containers, firmware, software): it subscribes to the
// domain's desiredstate, desiredstate/command and currentstate/get topics,
// publishes current state (retained, on every connect and on request) and
// desired state feedback with the full action list, runs the phases in
// order, rejects commands given in the wrong phase, and persists the
// operation so that an agent killed mid-phase resumes it at start.
//
// A domain implements only Domain: its inventory, how it plans actions for a
// desired state, and how it executes one command over those actions.
//
// Persisted layout (bbolt, see services/internal/store):
//
//	v1/
//	  operation -> JSON of Operation (absent when idle)
package updateagent

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/kantofw/kanto/services/internal/updateapi"
)

// Domain is what a domain agent implements. Methods are called from one
// goroutine at a time, except CurrentState, which may run concurrently
// with Execute and must be safe for that.
type Domain interface {
	// CurrentState returns the domain's inventory.
	CurrentState(ctx context.Context) (updateapi.Inventory, error)
	// Identify plans what brings the domain to op.Desired: it sets
	// op.Actions (component IDs "<domain>:<id>", status IDENTIFIED, a
	// message describing the step) and may keep its own plan in op.Data.
	// An error is reported as IDENTIFICATION_FAILED with its text.
	Identify(ctx context.Context, op *Operation) error
	// Execute runs cmd over op.Actions, updating them through op.SetAction.
	// It must be resumable: after a crash it is called again with the same
	// command and the persisted op. A nil return is the phase's success; an
	// error its failure, reported with the error's text. When ctx ends the
	// agent is stopping: return ctx.Err() and the phase is resumed later.
	Execute(ctx context.Context, cmd updateapi.CommandType, op *Operation) error
}

// ErrWrongPhase marks a command that the operation's status does not allow.
var ErrWrongPhase = errors.New("wrong phase")

// Operation is one desired state being applied by a domain.
type Operation struct {
	ActivityID  string                  `json:"activityId"`
	Desired     *updateapi.DesiredState `json:"desired"`
	Actions     []updateapi.Action      `json:"actions"`
	Data        json.RawMessage         `json:"data,omitempty"`
	Status      updateapi.Status        `json:"status"`
	Message     string                  `json:"message,omitempty"`
	LastCommand updateapi.CommandType   `json:"lastCommand,omitempty"`
	Failed      bool                    `json:"failed,omitempty"`

	agent *Agent
}

// Components returns the domain's desired components.
func (op *Operation) Components() []updateapi.Component {
	if op.Desired == nil || len(op.Desired.Domains) == 0 {
		return nil
	}
	return op.Desired.Domains[0].Components
}

// SetAction updates action i and publishes feedback with the full action
// list under the current phase status. Progress 0 is omitted on the wire.
func (op *Operation) SetAction(ctx context.Context, i int, st updateapi.ActionStatus, progress int, msg string) {
	if i < 0 || i >= len(op.Actions) {
		return
	}
	a := &op.Actions[i]
	a.Status, a.Progress, a.Message = st, progress, msg
	if op.agent != nil {
		op.agent.publishFeedback(ctx, op)
	}
}

// Save persists op (including Data) so a restart resumes from here.
func (op *Operation) Save() error {
	if op.agent == nil {
		return nil
	}
	return op.agent.save(op)
}

// phaseRule says which status a command needs and what it reports.
type phaseRule struct {
	from              []updateapi.Status
	running, ok, fail updateapi.Status
}

var rules = map[updateapi.CommandType]phaseRule{
	updateapi.CommandDownload: {
		from:    []updateapi.Status{updateapi.StatusIdentified},
		running: updateapi.BaselineDownloading, ok: updateapi.BaselineDownloadSuccess, fail: updateapi.BaselineDownloadFailure,
	},
	updateapi.CommandUpdate: {
		from:    []updateapi.Status{updateapi.BaselineDownloadSuccess},
		running: updateapi.BaselineUpdating, ok: updateapi.BaselineUpdateSuccess, fail: updateapi.BaselineUpdateFailure,
	},
	updateapi.CommandActivate: {
		from:    []updateapi.Status{updateapi.BaselineUpdateSuccess},
		running: updateapi.BaselineActivating, ok: updateapi.BaselineActivationSuccess, fail: updateapi.BaselineActivationFailure,
	},
	updateapi.CommandRollback: {
		from: []updateapi.Status{updateapi.StatusIdentified, updateapi.BaselineDownloadSuccess, updateapi.BaselineUpdateSuccess,
			updateapi.BaselineUpdateFailure, updateapi.BaselineActivationFailure, updateapi.BaselineActivationSuccess},
		running: updateapi.BaselineRollback, ok: updateapi.BaselineRollbackSuccess, fail: updateapi.BaselineRollbackFailure,
	},
	updateapi.CommandCleanup: {
		running: updateapi.BaselineCleanup, ok: updateapi.BaselineCleanupSuccess, fail: updateapi.BaselineCleanupFailure,
	},
}

// inProgress reports whether st is a phase that was running when the agent
// stopped, and which command to run again.
func inProgress(st updateapi.Status) (updateapi.CommandType, bool) {
	for c, r := range rules {
		if r.running == st {
			return c, true
		}
	}
	return "", false
}
