package bootenv

import (
	"fmt"
	"strconv"
	"strings"
)

// Slot names of the A/B schemes.
const (
	SlotA = "A"
	SlotB = "B"
)

// Other returns the other slot of the pair.
func Other(slot string) string {
	if slot == SlotA {
		return SlotB
	}
	return SlotA
}

func checkSlot(slot string) error {
	if slot != SlotA && slot != SlotB {
		return fmt.Errorf("slot %q, want A or B: %w", slot, ErrInvalid)
	}
	return nil
}

// SlotState is what the environment says about one slot.
type SlotState struct {
	// Bootable: the bootloader may pick the slot (GRUB X_OK=1, U-Boot
	// BOOT_X_LEFT>0).
	Bootable bool `json:"bootable"`
	// Trial: the slot is on trial (armed or booted but not committed).
	Trial bool `json:"trial"`
	// AttemptsLeft: U-Boot's BOOT_X_LEFT; for GRUB 1 when armed, else 0.
	AttemptsLeft int `json:"attemptsLeft"`
}

// State is the A/B view of an environment.
type State struct {
	Order []string             `json:"order"`
	Slots map[string]SlotState `json:"slots"`
	Env   map[string]string    `json:"env"`
}

// Primary is the slot the bootloader will try first at the next boot, or
// "" when none is bootable.
func (s State) Primary() string {
	for _, n := range s.Order {
		if s.Slots[n].Bootable {
			return n
		}
	}
	return ""
}

// Scheme is an A/B boot scheme on top of a Store. Each method is exactly
// one Store.Write.
type Scheme interface {
	State() (State, error)
	// MarkBad makes slot unbootable and the other slot primary. Done
	// before the first byte is written to slot.
	MarkBad(slot string) error
	// Arm makes slot primary for one trial boot (U-Boot: bootAttempts
	// trial boots). Done after all writes to slot and an fsync.
	Arm(slot string) error
	// Commit ends the trial of slot: it stays primary and bootable.
	Commit(slot string) error
}

var (
	_ Scheme = (*GrubScheme)(nil)
	_ Scheme = (*UBootScheme)(nil)
)

func order(first string) string { return first + " " + Other(first) }

func parseOrder(v string, def []string) []string {
	var out []string
	for _, f := range strings.Fields(v) {
		if (f == SlotA || f == SlotB) && !contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return def
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// GrubScheme is the RAUC-style grubenv scheme with trial-only attempts:
// ORDER, X_OK, X_TRY (0 committed, 1 armed, 2 attempt used).
type GrubScheme struct{ Store Store }

// NewGrubScheme returns the GRUB scheme over store.
func NewGrubScheme(store Store) *GrubScheme { return &GrubScheme{Store: store} }

// State implements Scheme.
func (g *GrubScheme) State() (State, error) {
	env, err := g.Store.Read()
	if err != nil {
		return State{}, err
	}
	st := State{Order: parseOrder(env["ORDER"], []string{SlotA, SlotB}), Slots: map[string]SlotState{}, Env: env}
	for _, s := range []string{SlotA, SlotB} {
		ok := env[s+"_OK"] == "1"
		try := env[s+"_TRY"]
		ss := SlotState{Bootable: ok && (try == "0" || try == "1" || try == ""), Trial: ok && try != "0" && try != ""}
		if ok && try == "1" {
			ss.AttemptsLeft = 1
		}
		st.Slots[s] = ss
	}
	return st, nil
}

// MarkBad implements Scheme: {X_OK=0, X_TRY=0, ORDER="Y X"}.
func (g *GrubScheme) MarkBad(slot string) error {
	if err := checkSlot(slot); err != nil {
		return err
	}
	return g.Store.Write(map[string]string{slot + "_OK": "0", slot + "_TRY": "0", "ORDER": order(Other(slot))})
}

// Arm implements Scheme: {X_OK=1, X_TRY=1, ORDER="X Y"}.
func (g *GrubScheme) Arm(slot string) error {
	if err := checkSlot(slot); err != nil {
		return err
	}
	return g.Store.Write(map[string]string{slot + "_OK": "1", slot + "_TRY": "1", "ORDER": order(slot)})
}

// Commit implements Scheme: {X_OK=1, X_TRY=0}.
func (g *GrubScheme) Commit(slot string) error {
	if err := checkSlot(slot); err != nil {
		return err
	}
	return g.Store.Write(map[string]string{slot + "_OK": "1", slot + "_TRY": "0"})
}

// DefaultBootAttempts is BOOT_X_LEFT after arm and commit.
const DefaultBootAttempts = 3

// UBootScheme is the U-Boot scheme: BOOT_ORDER, BOOT_X_LEFT, BOOT_TRIAL;
// attempts are decremented by the boot script only while BOOT_TRIAL=1.
type UBootScheme struct {
	Store    Store
	Attempts int
}

// NewUBootScheme returns the U-Boot scheme; attempts outside 1..9 means
// DefaultBootAttempts.
func NewUBootScheme(store Store, attempts int) *UBootScheme {
	if attempts < 1 || attempts > 9 {
		attempts = DefaultBootAttempts
	}
	return &UBootScheme{Store: store, Attempts: attempts}
}

// State implements Scheme.
func (u *UBootScheme) State() (State, error) {
	env, err := u.Store.Read()
	if err != nil {
		return State{}, err
	}
	st := State{Order: parseOrder(env["BOOT_ORDER"], []string{SlotA, SlotB}), Slots: map[string]SlotState{}, Env: env}
	trial := env["BOOT_TRIAL"] == "1"
	for _, s := range []string{SlotA, SlotB} {
		left, err := strconv.Atoi(env["BOOT_"+s+"_LEFT"])
		if err != nil || left < 0 {
			left = 0
		}
		st.Slots[s] = SlotState{Bootable: left > 0, AttemptsLeft: left, Trial: trial && len(st.Order) > 0 && st.Order[0] == s}
	}
	return st, nil
}

// MarkBad implements Scheme: {BOOT_X_LEFT=0, BOOT_TRIAL=0, BOOT_ORDER="Y X"}.
func (u *UBootScheme) MarkBad(slot string) error {
	if err := checkSlot(slot); err != nil {
		return err
	}
	return u.Store.Write(map[string]string{"BOOT_" + slot + "_LEFT": "0", "BOOT_TRIAL": "0", "BOOT_ORDER": order(Other(slot))})
}

// Arm implements Scheme: {BOOT_X_LEFT=n, BOOT_TRIAL=1, BOOT_ORDER="X Y"}.
func (u *UBootScheme) Arm(slot string) error {
	if err := checkSlot(slot); err != nil {
		return err
	}
	return u.Store.Write(map[string]string{"BOOT_" + slot + "_LEFT": strconv.Itoa(u.Attempts), "BOOT_TRIAL": "1", "BOOT_ORDER": order(slot)})
}

// Commit implements Scheme: {BOOT_TRIAL=0, BOOT_X_LEFT=n}.
func (u *UBootScheme) Commit(slot string) error {
	if err := checkSlot(slot); err != nil {
		return err
	}
	return u.Store.Write(map[string]string{"BOOT_TRIAL": "0", "BOOT_" + slot + "_LEFT": strconv.Itoa(u.Attempts)})
}
