// Package updateapi is the wire format of Eclipse Kanto's Update Agent API:
// the envelope, the desired state, commands, feedback and the current state
// inventory, as exchanged on the <domain>update/... MQTT topics between the
// update manager, its domain agents and the cloud.
//
// Where upstream's docs and code disagree, the code is followed: feedback
// statuses are DOWNLOAD_SUCCESS/DOWNLOAD_FAILURE, ... (not the documented
// DOWNLOADED_COMPLETED), and config is an array of {key,value}, not an
// object (UM:api/types/desired_state.go, desired_state_feedback.go).
package updateapi

import (
	"encoding/json"
	"strings"
)

// Envelope wraps every message. All three keys are always serialised;
// Payload is null for current-state requests.
type Envelope struct {
	ActivityID string          `json:"activityId"`
	Timestamp  int64           `json:"timestamp"`
	Payload    json.RawMessage `json:"payload"`
}

// KeyValue is one config entry or parameter.
type KeyValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// DesiredState is what the device should run.
type DesiredState struct {
	Baselines []Baseline `json:"baselines,omitempty"`
	Domains   []Domain   `json:"domains,omitempty"`
}

// Baseline groups components ("<domain>:<id>") that are updated together.
type Baseline struct {
	Title         string   `json:"title,omitempty"`
	Description   string   `json:"description,omitempty"`
	Preconditions string   `json:"preconditions,omitempty"`
	Components    []string `json:"components,omitempty"`
}

// Domain is one domain's part of the desired state.
type Domain struct {
	ID         string      `json:"id"`
	Config     []KeyValue  `json:"config,omitempty"`
	Components []Component `json:"components,omitempty"`
}

// Component is one desired component of a domain.
type Component struct {
	ID      string     `json:"id"`
	Version string     `json:"version,omitempty"`
	Config  []KeyValue `json:"config,omitempty"`
}

// ConfigValue returns the value of key in c and whether it is set.
func ConfigValue(c []KeyValue, key string) (string, bool) {
	for _, kv := range c {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// SplitPerDomains returns each domain's share: its own domain entry and the
// baselines that name at least one of its components, filtered to them
// (UM:api/types/desired_state.go SplitPerDomains).
func (ds *DesiredState) SplitPerDomains() map[string]*DesiredState {
	out := make(map[string]*DesiredState, len(ds.Domains))
	for _, d := range ds.Domains {
		part := &DesiredState{Domains: []Domain{d}}
		prefix := d.ID + ":"
		for _, b := range ds.Baselines {
			var comps []string
			for _, c := range b.Components {
				if strings.HasPrefix(c, prefix) {
					comps = append(comps, c)
				}
			}
			if len(comps) > 0 {
				nb := b
				nb.Components = comps
				part.Baselines = append(part.Baselines, nb)
			}
		}
		out[d.ID] = part
	}
	return out
}

// CommandType is a desired state command.
type CommandType string

// Commands. There is no COMMIT: CLEANUP ends a successful activation.
const (
	CommandDownload CommandType = "DOWNLOAD"
	CommandUpdate   CommandType = "UPDATE"
	CommandActivate CommandType = "ACTIVATE"
	CommandRollback CommandType = "ROLLBACK"
	CommandCleanup  CommandType = "CLEANUP"
)

// ValidCommand reports whether c is one of the five commands.
func ValidCommand(c CommandType) bool {
	switch c {
	case CommandDownload, CommandUpdate, CommandActivate, CommandRollback, CommandCleanup:
		return true
	}
	return false
}

// DesiredStateCommand drives a domain agent through the phases. The update
// manager never sets Baseline; agents treat "" and "*" as all actions.
type DesiredStateCommand struct {
	Command  CommandType `json:"command"`
	Baseline string      `json:"baseline,omitempty"`
}

// Status is an overall or baseline (phase) status.
type Status string

// Overall statuses.
const (
	StatusIdentifying            Status = "IDENTIFYING"
	StatusIdentified             Status = "IDENTIFIED"
	StatusIdentificationFailed   Status = "IDENTIFICATION_FAILED"
	StatusRunning                Status = "RUNNING"
	StatusCompleted              Status = "COMPLETED"
	StatusIncomplete             Status = "INCOMPLETE"
	StatusIncompleteInconsistent Status = "INCOMPLETE_INCONSISTENT"
	StatusSuperseded             Status = "SUPERSEDED"
)

// Baseline (phase) statuses sent by agents.
const (
	BaselineDownloading       Status = "DOWNLOADING"
	BaselineDownloadSuccess   Status = "DOWNLOAD_SUCCESS"
	BaselineDownloadFailure   Status = "DOWNLOAD_FAILURE"
	BaselineUpdating          Status = "UPDATING"
	BaselineUpdateSuccess     Status = "UPDATE_SUCCESS"
	BaselineUpdateFailure     Status = "UPDATE_FAILURE"
	BaselineActivating        Status = "ACTIVATING"
	BaselineActivationSuccess Status = "ACTIVATION_SUCCESS"
	BaselineActivationFailure Status = "ACTIVATION_FAILURE"
	BaselineRollback          Status = "ROLLBACK"
	BaselineRollbackSuccess   Status = "ROLLBACK_SUCCESS"
	BaselineRollbackFailure   Status = "ROLLBACK_FAILURE"
	BaselineCleanup           Status = "CLEANUP"
	BaselineCleanupSuccess    Status = "CLEANUP_SUCCESS"
	BaselineCleanupFailure    Status = "CLEANUP_FAILURE"
)

// ActionStatus is the status of one component's action.
type ActionStatus string

// Action statuses.
const (
	ActionIdentified        ActionStatus = "IDENTIFIED"
	ActionDownloading       ActionStatus = "DOWNLOADING"
	ActionDownloadSuccess   ActionStatus = "DOWNLOAD_SUCCESS"
	ActionDownloadFailure   ActionStatus = "DOWNLOAD_FAILURE"
	ActionUpdating          ActionStatus = "UPDATING"
	ActionUpdateSuccess     ActionStatus = "UPDATE_SUCCESS"
	ActionUpdateFailure     ActionStatus = "UPDATE_FAILURE"
	ActionActivating        ActionStatus = "ACTIVATING"
	ActionActivationSuccess ActionStatus = "ACTIVATION_SUCCESS"
	ActionActivationFailure ActionStatus = "ACTIVATION_FAILURE"
	ActionRemoving          ActionStatus = "REMOVING"
	ActionRemovalSuccess    ActionStatus = "REMOVAL_SUCCESS"
	ActionRemovalFailure    ActionStatus = "REMOVAL_FAILURE"
)

// Feedback is a DesiredStateFeedback payload.
type Feedback struct {
	Baseline string   `json:"baseline,omitempty"`
	Status   Status   `json:"status"`
	Message  string   `json:"message,omitempty"`
	Actions  []Action `json:"actions,omitempty"`
}

// ComponentRef names a component in feedback: ID is domain-prefixed.
type ComponentRef struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

// Action is the progress of one component.
type Action struct {
	Component ComponentRef `json:"component"`
	Status    ActionStatus `json:"status"`
	Progress  int          `json:"progress,omitempty"`
	Message   string       `json:"message,omitempty"`
}

// Inventory is a current state.
type Inventory struct {
	HardwareNodes []HardwareNode `json:"hardwareNodes,omitempty"`
	SoftwareNodes []SoftwareNode `json:"softwareNodes,omitempty"`
	Associations  []Association  `json:"associations,omitempty"`
}

// HardwareNode is a piece of hardware.
type HardwareNode struct {
	ID          string     `json:"id"`
	Version     string     `json:"version,omitempty"`
	Name        string     `json:"name,omitempty"`
	Parameters  []KeyValue `json:"parameters,omitempty"`
	Addressable bool       `json:"addressable,omitempty"`
}

// SoftwareType classifies a software node.
type SoftwareType string

// Software node types.
const (
	TypeImage       SoftwareType = "IMAGE"
	TypeRaw         SoftwareType = "RAW"
	TypeData        SoftwareType = "DATA"
	TypeApplication SoftwareType = "APPLICATION"
	TypeContainer   SoftwareType = "CONTAINER"
)

// SoftwareNode is a piece of software.
type SoftwareNode struct {
	ID         string       `json:"id"`
	Version    string       `json:"version,omitempty"`
	Name       string       `json:"name,omitempty"`
	Parameters []KeyValue   `json:"parameters,omitempty"`
	Type       SoftwareType `json:"type,omitempty"`
}

// Association links two nodes.
type Association struct {
	SourceID string `json:"sourceId"`
	TargetID string `json:"targetId"`
}

// OwnerConsent asks the owner to approve a command.
type OwnerConsent struct {
	Command CommandType `json:"command"`
}

// ConsentStatus is the owner's answer.
type ConsentStatus string

// Consent answers.
const (
	ConsentApproved ConsentStatus = "APPROVED"
	ConsentDenied   ConsentStatus = "DENIED"
)

// OwnerConsentFeedback is the owner's answer to an OwnerConsent.
type OwnerConsentFeedback struct {
	Status ConsentStatus `json:"status"`
}

// TopicPrefix is the MQTT prefix of a domain: dashes removed and "update"
// appended unless already there (containers → containersupdate,
// self-update → selfupdate).
func TopicPrefix(domain string) string {
	p := strings.ReplaceAll(domain, "-", "")
	if !strings.HasSuffix(p, "update") {
		p += "update"
	}
	return p
}

// Topic suffixes under a domain's prefix.
const (
	SuffixDesiredState         = "/desiredstate"
	SuffixDesiredStateCommand  = "/desiredstate/command"
	SuffixDesiredStateFeedback = "/desiredstatefeedback"
	SuffixCurrentState         = "/currentstate"
	SuffixCurrentStateGet      = "/currentstate/get"
	SuffixOwnerConsent         = "/ownerconsent"
	SuffixOwnerConsentFeedback = "/ownerconsentfeedback"
)
