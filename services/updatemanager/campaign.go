package updatemanager

import (
	"encoding/json"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/kantofw/kanto/services/internal/store"
	"github.com/kantofw/kanto/services/internal/updateapi"
)

// The campaign database:
//
//	v1/
//	  campaign -> JSON of campaign (absent when no activity runs)
//
// It is rewritten after every event the orchestrator accepts, so a killed
// manager resumes at the last accepted event and re-sends what it waits for.
var campaignKey = []byte("campaign")

// migrations is the campaign database's schema.
var migrations = []store.Migration{{Name: "root bucket", Up: func(*bolt.Tx) error { return nil }}}

// phaseIdentify is the phase before DOWNLOAD; the others are commands.
const phaseIdentify updateapi.CommandType = "IDENTIFY"

// domainState is the manager's view of one participating domain.
type domainState struct {
	Status     updateapi.Status        `json:"status"`
	Message    string                  `json:"message,omitempty"`
	Actions    []updateapi.Action      `json:"actions,omitempty"`
	HasActions bool                    `json:"hasActions,omitempty"`
	Done       bool                    `json:"done,omitempty"`
	Part       *updateapi.DesiredState `json:"part"`
}

// campaign is the persisted state of the running activity.
type campaign struct {
	ActivityID string                  `json:"activityId"`
	Domains    map[string]*domainState `json:"domains"`
	Phase      updateapi.CommandType   `json:"phase"`
	Status     updateapi.Status        `json:"status"`
	Incomplete bool                    `json:"incomplete,omitempty"`
	Reasons    []string                `json:"reasons,omitempty"`
	// Consent is the command waiting for owner consent, if any, and the
	// domains it goes to once approved.
	Consent        updateapi.CommandType `json:"consent,omitempty"`
	ConsentTargets []string              `json:"consentTargets,omitempty"`
}

func (c *campaign) names() []string {
	out := make([]string, 0, len(c.Domains))
	for n := range c.Domains {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// actions is the union of every domain's latest actions, in domain order,
// with activation statuses shown as update statuses as upstream reports them
// (UM:util.FixActivationActionStatus).
func (c *campaign) actions() []updateapi.Action {
	var out []updateapi.Action
	for _, n := range c.names() {
		for _, a := range c.Domains[n].Actions {
			switch a.Status {
			case updateapi.ActionActivating:
				a.Status = updateapi.ActionUpdating
			case updateapi.ActionActivationSuccess:
				a.Status = updateapi.ActionUpdateSuccess
			case updateapi.ActionActivationFailure:
				a.Status = updateapi.ActionUpdateFailure
			}
			out = append(out, a)
		}
	}
	return out
}

func saveCampaign(db *store.DB, c *campaign) error {
	if db == nil {
		return nil
	}
	if c == nil {
		return db.UpdateRoot(func(root *bolt.Bucket) error { return root.Delete(campaignKey) })
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return db.UpdateRoot(func(root *bolt.Bucket) error { return root.Put(campaignKey, b) })
}

func loadCampaign(db *store.DB) (*campaign, error) {
	if db == nil {
		return nil, nil
	}
	var c *campaign
	err := db.ViewRoot(func(root *bolt.Bucket) error {
		raw := root.Get(campaignKey)
		if raw == nil {
			return nil
		}
		c = &campaign{}
		if err := json.Unmarshal(raw, c); err != nil {
			return fmt.Errorf("persisted campaign: %w", err)
		}
		return nil
	})
	return c, err
}
