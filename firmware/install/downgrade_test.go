package install_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/kantofw/kanto/firmware/bundle/bundletest"
	"github.com/kantofw/kanto/firmware/install"
	"github.com/kantofw/kanto/firmware/slot"
)

// TestDowngradePolicy: with downgrade "refuse" a bundle older than the
// running firmware is refused before anything is written; newer and equal
// versions install; free-text versions fail closed; an unknown running
// version and the per-install override let it through.
func TestDowngradePolicy(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		policy, recorded, base string
		bundle                 string
		allow                  bool
		wantErr                bool
	}{
		{"allow policy, older", slot.DowngradeAllow, "2.0.0", "", "1.9.0", false, false},
		{"default policy, older", "", "2.0.0", "", "1.0.0", false, false},
		{"refuse, older", slot.DowngradeRefuse, "2.0.0", "", "1.9.9", false, true},
		{"refuse, older pre-release", slot.DowngradeRefuse, "2.0.0", "", "2.0.0-rc.1", false, true},
		{"refuse, newer", slot.DowngradeRefuse, "2.0.0", "", "2.0.1", false, false},
		{"refuse, equal (reinstall)", slot.DowngradeRefuse, "v2.0.0", "", "2.0.0", false, false},
		{"refuse, build metadata only", slot.DowngradeRefuse, "2.0.0+b7", "", "2.0.0+b3", false, false},
		{"refuse, older than base version", slot.DowngradeRefuse, "", "3.1.0", "3.0.9", false, true},
		{"refuse, newer than base version", slot.DowngradeRefuse, "", "3.1.0", "3.2.0", false, false},
		{"refuse, running unknown", slot.DowngradeRefuse, "", "", "0.0.1", false, false},
		{"refuse, free-text bundle version", slot.DowngradeRefuse, "2.0.0", "", "nightly-42", false, true},
		{"refuse, free-text running version", slot.DowngradeRefuse, "build 7", "", "2.0.0", false, true},
		{"refuse overridden for this install", slot.DowngradeRefuse, "2.0.0", "", "1.0.0", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDevice(t)
			d.cfg.Downgrade, d.cfg.BaseVersion = tc.policy, tc.base
			if tc.recorded != "" {
				must(t, d.cfg.UpdateStatus("A", func(s *slot.Status) { s.Status, s.Version = slot.StatusGood, tc.recorded }))
			}
			b := bundletest.Build(t, d.pki.Signer(), map[string][]byte{"rootfs": bundletest.Image(64<<10, 3)}, bundletest.Options{Version: tc.bundle})
			envBefore, slotBefore := d.read(t, "grubenv"), d.read(t, "slotB.img")
			_, err := d.inst.Install(context.Background(), bytes.NewReader(b), install.Options{AllowDowngrade: tc.allow})
			if !tc.wantErr {
				must(t, err)
				return
			}
			if !errors.Is(err, install.ErrDowngrade) {
				t.Fatalf("err = %v, want ErrDowngrade", err)
			}
			if !bytes.Equal(d.read(t, "grubenv"), envBefore) || !bytes.Equal(d.read(t, "slotB.img"), slotBefore) {
				t.Fatal("a refused downgrade wrote the environment or the target")
			}
			st, err := d.cfg.LoadStatus()
			must(t, err)
			if s := st.Slots["B"]; s.Status != "" {
				t.Fatalf("slot B status %+v after a refused downgrade, want untouched", s)
			}
		})
	}
}

func TestSlotsFileDowngradeKey(t *testing.T) {
	base := `{"compatible":"b","bootloader":"grub","grubenv":"e","stateDir":"s","slots":[{"name":"A","class":"rootfs","device":"a"},{"name":"B","class":"rootfs","device":"b"}]`
	for _, tc := range []struct {
		extra string
		ok    bool
	}{
		{``, true},
		{`,"downgrade":"refuse","baseVersion":"1.0.0"`, true},
		{`,"downgrade":"allow"`, true},
		{`,"downgrade":"never"`, false},
	} {
		_, err := slot.Parse([]byte(base + tc.extra + "}"))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.extra, err, tc.ok)
		}
		if err != nil && !errors.Is(err, slot.ErrConfig) {
			t.Errorf("%s: %v is not ErrConfig", tc.extra, err)
		}
	}
}
