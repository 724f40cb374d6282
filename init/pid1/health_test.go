package pid1

import (
	"errors"
	"testing"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/init/supervise"
)

func TestDecide(t *testing.T) {
	grub := func(env map[string]string) bootenv.State {
		st, err := bootenv.NewGrubScheme(memStore(env)).State()
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// What GRUB leaves behind on a trial boot of B: B_TRY=2.
	trialB := grub(map[string]string{"ORDER": "B A", "A_OK": "1", "A_TRY": "0", "B_OK": "1", "B_TRY": "2"})
	committedA := grub(map[string]string{"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "0", "B_TRY": "0"})
	for _, tc := range []struct {
		name    string
		healthy bool
		slot    string
		st      bootenv.State
		err     error
		want    Outcome
	}{
		{"healthy trial commits", true, "B", trialB, nil, OutcomeCommit},
		{"unhealthy trial rolls back", false, "B", trialB, nil, OutcomeRollback},
		{"healthy committed", true, "A", committedA, nil, OutcomeGood},
		{"unhealthy committed only reports", false, "A", committedA, nil, OutcomeReport},
		{"fallback slot after failed trial", true, "A", trialB, nil, OutcomeGood},
		{"unknown slot never reboots", false, "", trialB, nil, OutcomeReport},
		{"unreadable env never reboots", false, "B", bootenv.State{}, errors.New("no env"), OutcomeReport},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.healthy, tc.slot, tc.st, tc.err); got != tc.want {
				t.Errorf("Decide() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUnstable(t *testing.T) {
	up := supervise.Status{Name: "a", PID: 10, Ready: true}
	for _, tc := range []struct {
		name          string
		before, after []supervise.Status
		want          string
	}{
		{"stable", []supervise.Status{up}, []supervise.Status{up}, ""},
		{"restarted", []supervise.Status{up}, []supervise.Status{{Name: "a", PID: 11, Ready: true, Restarts: 2}}, "a restarted 2 times"},
		{"down", []supervise.Status{up}, []supervise.Status{{Name: "a"}}, "a down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Unstable(tc.before, tc.after); got != tc.want {
				t.Errorf("Unstable() = %q, want %q", got, tc.want)
			}
		})
	}
}

type memStore map[string]string

func (m memStore) Read() (map[string]string, error) { return m, nil }
func (m memStore) Write(set map[string]string) error {
	for k, v := range set {
		m[k] = v
	}
	return nil
}
