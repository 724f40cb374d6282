package ota

import (
	"errors"
	"testing"
)

// TestRecoveryTable checks each row of the recovery table.
func TestRecoveryTable(t *testing.T) {
	for _, tc := range []struct {
		state State
		sit   situation
		want  action
	}{
		{StateIdle, situation{rebooted: true}, actNone},
		{StateCommitted, situation{overTransits: true}, actNone},
		{StateRolledBack, situation{}, actNone},
		{StateFailed, situation{}, actNone},
		{StateDownloading, situation{rebooted: true}, actFail},
		{StateDownloading, situation{rebooted: true, canRetry: true}, actResumeInstall},
		{StateInstalling, situation{canRetry: true}, actResumeInstall},
		{StateInstalling, situation{canRetry: true, targetArmed: true}, actInstalled},
		{StateDownloading, situation{overTransits: true}, actFailRollback},
		{StateInstalling, situation{}, actFail},
		{StateInstalling, situation{targetArmed: true}, actInstalled},
		{StateInstalling, situation{onTarget: true, rebooted: true}, actVerify},
		{StateInstalled, situation{}, actNone},
		{StateInstalled, situation{autoReboot: true}, actReboot},
		{StateInstalled, situation{rebooted: true, targetArmed: true}, actNone},
		{StateInstalled, situation{rebooted: true}, actRolledBack},
		{StateInstalled, situation{rebooted: true, onTarget: true}, actVerify},
		{StateRebooting, situation{}, actReboot},
		{StateRebooting, situation{rebooted: true, onTarget: true}, actVerify},
		{StateRebooting, situation{rebooted: true, onTarget: true, overBoots: true}, actRollback},
		{StateRebooting, situation{rebooted: true}, actRolledBack},
		{StateVerifying, situation{onTarget: true}, actVerify},
		{StateVerifying, situation{onTarget: true, rebooted: true, overBoots: true}, actRollback},
		{StateVerifying, situation{rebooted: true}, actRolledBack},
		{StateVerifying, situation{onTarget: true, overTransits: true}, actFailRollback},
	} {
		got, reason, err := nextAction(tc.state, tc.sit)
		if err != nil || got != tc.want || reason == "" {
			t.Errorf("%s %+v: got %d (%q, %v), want %d", tc.state, tc.sit, got, reason, err, tc.want)
		}
	}
	if _, _, err := nextAction("sleeping", situation{}); !errors.Is(err, ErrUnknownState) {
		t.Errorf("unknown state: %v", err)
	}
}
