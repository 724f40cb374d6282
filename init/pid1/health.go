package pid1

import (
	"fmt"
	"strings"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/init/supervise"
)

// bootScheme is the part of the A/B scheme the init needs; *bootenv.GrubScheme
// implements it.
type bootScheme interface {
	State() (bootenv.State, error)
	Commit(slot string) error
}

var _ bootScheme = (*bootenv.GrubScheme)(nil)

// Outcome is what the init does at the end of the health phase.
type Outcome string

// Outcomes.
const (
	OutcomeCommit   Outcome = "commit"   // healthy trial boot: commit the slot
	OutcomeGood     Outcome = "good"     // healthy, slot already committed
	OutcomeRollback Outcome = "rollback" // unhealthy trial boot: reboot, the bootloader falls back
	OutcomeReport   Outcome = "report"   // unhealthy committed slot: report only, no reboot loop
)

// Decide maps the health result and the boot environment to an outcome.
// A slot counts as on trial when the environment says so; an unknown slot
// or unreadable environment is treated as committed, so the init never
// reboots in a loop for lack of information.
func Decide(healthy bool, slot string, st bootenv.State, stErr error) Outcome {
	trial := stErr == nil && slot != "" && st.Slots[slot].Trial
	switch {
	case healthy && trial:
		return OutcomeCommit
	case healthy:
		return OutcomeGood
	case trial:
		return OutcomeRollback
	default:
		return OutcomeReport
	}
}

// Unstable compares service snapshots taken at the start and the end of the
// settle window and describes what went wrong ("" when every service stayed
// up and ready without a restart).
func Unstable(before, after []supervise.Status) string {
	restarts := map[string]int{}
	for _, b := range before {
		restarts[b.Name] = b.Restarts
	}
	var bad []string
	for _, a := range after {
		switch {
		case a.PID == 0 || !a.Ready:
			bad = append(bad, a.Name+" down")
		case a.Restarts != restarts[a.Name]:
			bad = append(bad, fmt.Sprintf("%s restarted %d times", a.Name, a.Restarts-restarts[a.Name]))
		}
	}
	return strings.Join(bad, ", ")
}
