package bootenv_test

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/firmware/bootenv/bootenvtest"
)

type rig struct {
	name   string
	scheme func(t *testing.T) (bootenv.Scheme, func() (string, error))
}

func rigs() []rig {
	return []rig{
		{"grub", func(t *testing.T) (bootenv.Scheme, func() (string, error)) {
			g := bootenv.NewGrubEnv(filepath.Join(t.TempDir(), "grubenv"))
			if err := g.Write(map[string]string{"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "0", "B_TRY": "0"}); err != nil {
				t.Fatal(err)
			}
			return bootenv.NewGrubScheme(g), func() (string, error) { return bootenvtest.GrubBoot(g) }
		}},
		{"uboot", func(t *testing.T) (bootenv.Scheme, func() (string, error)) {
			u := &bootenv.UBootEnv{Copies: []bootenv.UBootCopy{{Device: filepath.Join(t.TempDir(), "env"), Size: 4096}, {Device: filepath.Join(t.TempDir(), "env2"), Size: 4096}}, Create: true}
			for _, c := range u.Copies {
				if err := writeZeros(c.Device, 4096); err != nil {
					t.Fatal(err)
				}
			}
			if err := u.Write(map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0", "BOOT_TRIAL": "0"}); err != nil {
				t.Fatal(err)
			}
			return bootenv.NewUBootScheme(u, 3), func() (string, error) { return bootenvtest.UBootBoot(u) }
		}},
	}
}

// TestSchemeLifecycle drives both schemes through the update steps with a
// simulated bootloader and checks which slot boots after each step.
func TestSchemeLifecycle(t *testing.T) {
	for _, r := range rigs() {
		t.Run(r.name, func(t *testing.T) {
			boots := func(s bootenv.Scheme, boot func() (string, error), n int) []string {
				t.Helper()
				var got []string
				for range n {
					slot, err := boot()
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, slot)
				}
				return got
			}
			s, boot := r.scheme(t)
			// A committed system never falls back, however often it reboots.
			if diff := cmp.Diff([]string{"A", "A", "A", "A", "A"}, boots(s, boot, 5)); diff != "" {
				t.Fatalf("committed A (-want +got):\n%s", diff)
			}
			// Install into B: mark bad, (write), arm, reboot → B on trial.
			if err := s.MarkBad("B"); err != nil {
				t.Fatal(err)
			}
			if got := boots(s, boot, 1); got[0] != "A" {
				t.Fatalf("B marked bad but %v booted", got)
			}
			if err := s.Arm("B"); err != nil {
				t.Fatal(err)
			}
			if got := boots(s, boot, 1); got[0] != "B" {
				t.Fatalf("B armed but %v booted", got)
			}
			st, err := s.State()
			if err != nil {
				t.Fatal(err)
			}
			if !st.Slots["B"].Trial {
				t.Fatalf("B booted on trial but state %+v", st.Slots)
			}
			// Commit B: stays on B for good.
			if err := s.Commit("B"); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"B", "B", "B", "B", "B"}, boots(s, boot, 5)); diff != "" {
				t.Fatalf("committed B (-want +got):\n%s", diff)
			}
			// Next update into A is never committed: the bootloader falls back to B.
			if err := s.MarkBad("A"); err != nil {
				t.Fatal(err)
			}
			if err := s.Arm("A"); err != nil {
				t.Fatal(err)
			}
			got := boots(s, boot, 6)
			if got[0] != "A" || got[len(got)-1] != "B" || got[len(got)-2] != "B" {
				t.Fatalf("uncommitted A: boots %v, want A first and B at the end", got)
			}
			st, err = s.State()
			if err != nil {
				t.Fatal(err)
			}
			if st.Slots["A"].Bootable || st.Slots["A"].Trial || st.Primary() != "B" {
				t.Fatalf("after fallback: %+v primary %q", st.Slots, st.Primary())
			}
		})
	}
}
