package ota

import (
	"fmt"
	"time"
)

// State is a persisted state of the update state machine. The values are
// stored in the database: never rename one.
type State string

// States.
const (
	StateIdle        State = "idle"
	StateDownloading State = "downloading" // fetching and verifying the manifest; nothing written
	StateInstalling  State = "installing"  // target marked bad, being written
	StateInstalled   State = "installed"   // target written and armed; waiting for the reboot
	StateRebooting   State = "rebooting"   // reboot into the target requested
	StateVerifying   State = "verifying"   // booted the target, running health checks
	StateCommitted   State = "committed"   // target marked good (terminal)
	StateRolledBack  State = "rolled-back" // back on the previous slot (terminal)
	StateFailed      State = "failed"      // the update did not get installed (terminal)
)

// Terminal reports whether s ends an update.
func (s State) Terminal() bool {
	switch s {
	case StateIdle, StateCommitted, StateRolledBack, StateFailed:
		return true
	}
	return false
}

// Record is the persisted state of the current (or last) update.
type Record struct {
	State       State  `json:"state"`
	Transaction string `json:"transaction,omitempty"`
	Source      string `json:"source,omitempty"`
	Version     string `json:"version,omitempty"`
	// Previous is the slot booted when the update started; Target the slot
	// written.
	Previous string `json:"previous,omitempty"`
	Target   string `json:"target,omitempty"`
	// BootID is the kernel boot id when the record was written; a
	// different one at Resume means the device rebooted.
	BootID string `json:"bootId,omitempty"`
	// Boots counts reboots seen while rebooting or verifying (the reboot
	// loop cap).
	Boots int `json:"boots"`
	// Transitions counts the records written for this update (the state
	// loop cap).
	Transitions int `json:"transitions"`
	// Attempts counts install attempts (the first and the resumptions
	// after a crash or power cut).
	Attempts int `json:"attempts,omitempty"`
	// AllowDowngrade is the install's override of the slots file's
	// downgrade policy, kept so a resumed attempt decides the same way.
	AllowDowngrade bool      `json:"allowDowngrade,omitempty"`
	Reason         string    `json:"reason,omitempty"`
	Error          string    `json:"error,omitempty"`
	Started        time.Time `json:"started,omitzero"`
	Updated        time.Time `json:"updated,omitzero"`
}

// Transition is one entry of the history.
type Transition struct {
	Transaction string    `json:"transaction,omitempty"`
	From        State     `json:"from"`
	To          State     `json:"to"`
	Reason      string    `json:"reason,omitempty"`
	At          time.Time `json:"at"`
}

// situation is what Resume knows after a restart.
type situation struct {
	rebooted     bool // the boot id changed since the record was written
	onTarget     bool // the booted slot is the update's target
	targetArmed  bool // the boot environment has the target on trial
	overBoots    bool // Boots has reached the cap
	overTransits bool // Transitions has reached the cap
	autoReboot   bool // Config.AutoReboot
	canRetry     bool // the install may be attempted again (Attempts below the cap)
}

// action is what Resume does in a situation.
type action int

const (
	actNone          action = iota // stay (terminal, or waiting)
	actFail                        // → failed, target marked bad
	actFailRollback                // → failed, and roll back if on the target
	actInstalled                   // → installed (writes had completed)
	actVerify                      // → verifying, then health checks
	actRolledBack                  // → rolled-back (the bootloader fell back)
	actRollback                    // mark target bad and reboot to previous
	actReboot                      // issue the reboot again
	actResumeInstall               // install again, keeping what the target holds
)

// recoveryRule is one row of the recovery table.
type recoveryRule struct {
	state  State
	when   func(s situation) bool
	act    action
	reason string
}

func always(situation) bool { return true }

// recovery is the table Resume applies after an unexpected restart (a
// crash, kill -9 or power cut), first matching row wins. It is checked
// row by row by TestRecoveryTable and, end to end, by the kill tests.
var recovery = []recoveryRule{
	{"", func(s situation) bool { return s.overTransits }, actFailRollback,
		"too many state transitions for one update: breaking the loop"},

	{StateIdle, always, actNone, "nothing to do"},
	{StateCommitted, always, actNone, "update committed"},
	{StateRolledBack, always, actNone, "update rolled back"},
	{StateFailed, always, actNone, "update failed"},

	{StateDownloading, func(s situation) bool { return s.canRetry }, actResumeInstall,
		"interrupted while fetching the manifest (nothing written): starting the install again"},
	{StateDownloading, always, actFail,
		"interrupted while fetching the manifest too often: nothing was written, the target is untouched"},

	{StateInstalling, func(s situation) bool { return s.onTarget }, actVerify,
		"the target was armed and booted before the installed state was recorded"},
	{StateInstalling, func(s situation) bool { return s.targetArmed }, actInstalled,
		"all writes had completed and the target was armed before the restart"},
	{StateInstalling, func(s situation) bool { return s.canRetry }, actResumeInstall,
		"interrupted while writing: resuming from the first chunk the target lacks"},
	{StateInstalling, always, actFail,
		"interrupted while writing too often: the target stays marked bad"},

	{StateInstalled, func(s situation) bool { return s.onTarget }, actVerify,
		"the device rebooted into the new slot before the agent asked for it"},
	{StateInstalled, func(s situation) bool { return s.rebooted && !s.targetArmed }, actRolledBack,
		"the device rebooted and the bootloader did not keep the new slot"},
	{StateInstalled, func(s situation) bool { return s.autoReboot }, actReboot,
		"installed before the restart: rebooting into the new slot"},
	{StateInstalled, always, actNone, "installed, waiting for the reboot"},

	{StateRebooting, func(s situation) bool { return !s.rebooted }, actReboot,
		"the requested reboot did not happen: requesting it again"},
	{StateRebooting, func(s situation) bool { return s.onTarget && s.overBoots }, actRollback,
		"reboot loop: the new slot keeps restarting"},
	{StateRebooting, func(s situation) bool { return s.onTarget }, actVerify,
		"booted the new slot"},
	{StateRebooting, always, actRolledBack,
		"the new slot did not boot: the bootloader fell back to the previous slot"},

	{StateVerifying, func(s situation) bool { return s.onTarget && s.overBoots }, actRollback,
		"reboot loop during verification: giving up on the new slot"},
	{StateVerifying, func(s situation) bool { return s.onTarget }, actVerify,
		"restarted during the health checks: running them again"},
	{StateVerifying, always, actRolledBack,
		"the device fell back to the previous slot during verification"},
}

func nextAction(st State, s situation) (action, string, error) {
	for _, r := range recovery {
		if (r.state == "" || r.state == st) && r.when(s) {
			if r.state == "" && st.Terminal() {
				continue
			}
			return r.act, r.reason, nil
		}
	}
	return actNone, "", fmt.Errorf("state %q: %w", st, ErrUnknownState)
}
