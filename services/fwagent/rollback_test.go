package fwagent_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/firmware/bundle/bundletest"
	"github.com/kantofw/kanto/firmware/slot"
	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/fwagent"
	"github.com/kantofw/kanto/services/fwagent/fwagenttest"
	"github.com/kantofw/kanto/services/internal/mqtt"
	"github.com/kantofw/kanto/services/internal/updateagent"
	"github.com/kantofw/kanto/services/internal/updateapi"
	"github.com/kantofw/kanto/services/softwareupdate"
	"github.com/kantofw/kanto/services/updatemanager"
)

// fwCampaign is a firmware-only campaign on an in-process simulated
// device (fwagenttest) with the update manager and an observer.
type fwCampaign struct {
	o     *observer
	dev   *fwagenttest.Device
	apply func() // publishes the desired state
}

// startFwCampaign serves bundle, starts the device and a manager configured
// by edit; apply then asks for firmware 2.0 under activity id.
func startFwCampaign(t *testing.T, id string, bundleFor func(*fwagenttest.Device) []byte, edit func(*updatemanager.Config)) *fwCampaign {
	t.Helper()
	b := mosquittotest.Start(t, mosquittotest.Options{})
	o := newObserver(t, b.URL(), id)
	dev := fwagenttest.New(t, b.URL(), true)
	fw := bundleFor(dev)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(fw))
	}))
	t.Cleanup(srv.Close)
	o.wait("firmware agent up", func() bool { return o.cs["firmwareupdate"] })

	runManager(t, b.URL(), t.TempDir(), edit, "firmware")
	o.wait("manager up", func() bool { return o.cs["deviceupdate"] })

	ds := updateapi.DesiredState{Domains: []updateapi.Domain{
		{ID: "firmware", Components: []updateapi.Component{{ID: "os", Version: "2.0", Config: []updateapi.KeyValue{
			{Key: "url", Value: srv.URL + "/fw.kfw"}, {Key: "sha256", Value: hexSHA(fw)}}}}},
	}}
	apply := func() {
		env, _ := updateapi.NewEnvelope(id, time.Now(), ds)
		if err := o.c.Publish(context.Background(), mqtt.Message{Topic: "deviceupdate/desiredstate", QoS: 1, Payload: env}); err != nil {
			t.Fatal(err)
		}
	}
	return &fwCampaign{o: o, dev: dev, apply: apply}
}

// downloads lists the files left under the agent's download folder.
func downloads(t *testing.T, dev *fwagenttest.Device) []string {
	t.Helper()
	var out []string
	root := filepath.Join(dev.Dir, "state-fw", "downloads")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

func slotStatus(t *testing.T, dir string) slot.StatusFile {
	t.Helper()
	var sf slot.StatusFile
	raw, err := os.ReadFile(filepath.Join(dir, "state", "slot-status.json"))
	if err == nil {
		err = json.Unmarshal(raw, &sf)
	}
	if err != nil {
		t.Fatalf("slot status: %v", err)
	}
	return sf
}

// TestActivateConsentDeniedRollsBack: ACTIVATE needs the owner's consent,
// the owner denies it, and the manager sends ROLLBACK (reference §2.9):
// the armed slot B is marked bad before it was ever booted, A stays the
// booted and primary slot, and the campaign ends INCOMPLETE.
func TestActivateConsentDeniedRollsBack(t *testing.T) {
	consent := make(chan updateapi.OwnerConsent, 4)
	c := startFwCampaign(t, "rb-1", func(d *fwagenttest.Device) []byte { return d.Bundle }, func(cfg *updatemanager.Config) {
		cfg.OwnerConsentCommands = []string{"ACTIVATE"}
	})
	if err := c.o.c.Subscribe(context.Background(), "deviceupdate/ownerconsent", 1, func(_ context.Context, m mqtt.Message) {
		env, err := updateapi.ParseEnvelope(m.Payload)
		if err != nil || env.ActivityID != "rb-1" {
			return
		}
		var oc updateapi.OwnerConsent
		if json.Unmarshal(env.Payload, &oc) == nil {
			consent <- oc
		}
	}); err != nil {
		t.Fatal(err)
	}
	c.apply()
	select {
	case oc := <-consent:
		if oc.Command != updateapi.CommandActivate {
			t.Fatalf("consent asked for %s, want ACTIVATE", oc.Command)
		}
	case <-time.After(waitFor):
		t.Fatalf("no owner consent request; firmware feedback %v", c.o.statuses("firmwareupdate"))
	}
	// The slot is written and armed for its trial boot now.
	env, err := bootenv.NewGrubEnv(filepath.Join(c.dev.Dir, "grubenv")).Read()
	if err != nil {
		t.Fatal(err)
	}
	if env["ORDER"] != "B A" || env["B_TRY"] != "1" {
		t.Fatalf("before the answer grubenv %v, want B armed", env)
	}
	fb, _ := updateapi.NewEnvelope("rb-1", time.Now(), updateapi.OwnerConsentFeedback{Status: updateapi.ConsentDenied})
	if err := c.o.c.Publish(context.Background(), mqtt.Message{Topic: "deviceupdate/ownerconsentfeedback", QoS: 1, Payload: fb}); err != nil {
		t.Fatal(err)
	}

	final := c.o.final()
	if final.Status != updateapi.StatusIncomplete || !strings.Contains(final.Message, "owner consent denied for ACTIVATE") {
		t.Fatalf("final %s %q", final.Status, final.Message)
	}
	c.o.wait("firmware agent done", func() bool { return slices.Contains(statusesLocked(c.o, "firmwareupdate"), "COMPLETED") })
	want := []updateapi.Status{"IDENTIFYING", "IDENTIFIED", "DOWNLOADING", "DOWNLOAD_SUCCESS", "UPDATING", "UPDATE_SUCCESS",
		"ROLLBACK", "ROLLBACK_SUCCESS", "CLEANUP_SUCCESS", "COMPLETED"}
	if diff := cmp.Diff(want, compact(c.o.statuses("firmwareupdate"))); diff != "" {
		t.Errorf("firmware (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]updateapi.Status{"IDENTIFYING", "IDENTIFIED", "RUNNING", "INCOMPLETE"}, compact(c.o.statuses("deviceupdate"))); diff != "" {
		t.Errorf("manager (-want +got):\n%s", diff)
	}
	if len(final.Actions) != 1 || final.Actions[0].Status != updateapi.ActionUpdateFailure || final.Actions[0].Message != "rolled back" {
		t.Errorf("final actions %+v", final.Actions)
	}
	if got := c.dev.Booted(); !slices.Equal(got, []string{"A"}) {
		t.Errorf("boots %v, want only A", got)
	}
	env, err = bootenv.NewGrubEnv(filepath.Join(c.dev.Dir, "grubenv")).Read()
	if err != nil {
		t.Fatal(err)
	}
	if env["ORDER"] != "A B" || env["B_OK"] != "0" || env["B_TRY"] != "0" || env["A_OK"] != "1" {
		t.Errorf("grubenv %v, want A primary and B not bootable", env)
	}
	if b := slotStatus(t, c.dev.Dir).Slots["B"]; b.Status != slot.StatusBad {
		t.Errorf("slot B status %+v, want bad", b)
	}
	if left := downloads(t, c.dev); len(left) != 0 {
		t.Errorf("downloads left after cleanup: %v", left)
	}
}

// corruptSignature flips one bit of the bundle's signature value, leaving
// the manifest, the payloads and every length as they were.
func corruptSignature(t *testing.T, b []byte) []byte {
	t.Helper()
	h, err := bundle.ReadHeader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(h.Signature.Signature)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x01
	bad := base64.StdEncoding.EncodeToString(raw)
	if n := bytes.Count(b, []byte(h.Signature.Signature)); n != 1 || len(bad) != len(h.Signature.Signature) {
		t.Fatalf("signature found %d times", n)
	}
	return bytes.Replace(b, []byte(h.Signature.Signature), []byte(bad), 1)
}

// TestCorruptSignatureDownloadFailure: a bundle whose signature does not
// verify (its transport sha256 matches) fails DOWNLOAD; the manager cleans
// the domain up and ends INCOMPLETE; no slot was touched and the download
// is gone.
func TestCorruptSignatureDownloadFailure(t *testing.T) {
	c := startFwCampaign(t, "sig-1", func(d *fwagenttest.Device) []byte { return corruptSignature(t, d.Bundle) }, nil)
	c.apply()
	final := c.o.final()
	if final.Status != updateapi.StatusIncomplete || !strings.Contains(final.Message, "[firmware]: ") ||
		!strings.Contains(final.Message, bundle.ErrSignature.Error()) {
		t.Fatalf("final %s %q", final.Status, final.Message)
	}
	c.o.wait("firmware agent done", func() bool { return slices.Contains(statusesLocked(c.o, "firmwareupdate"), "INCOMPLETE") })
	want := []updateapi.Status{"IDENTIFYING", "IDENTIFIED", "DOWNLOADING", "DOWNLOAD_FAILURE", "CLEANUP_SUCCESS", "INCOMPLETE"}
	if diff := cmp.Diff(want, compact(c.o.statuses("firmwareupdate"))); diff != "" {
		t.Errorf("firmware (-want +got):\n%s", diff)
	}
	if len(final.Actions) != 1 || final.Actions[0].Status != updateapi.ActionDownloadFailure {
		t.Errorf("final actions %+v", final.Actions)
	}
	if left := downloads(t, c.dev); len(left) != 0 {
		t.Errorf("downloads left: %v", left)
	}
	if got := c.dev.Booted(); !slices.Equal(got, []string{"A"}) {
		t.Errorf("boots %v, want only A", got)
	}
	env, err := bootenv.NewGrubEnv(filepath.Join(c.dev.Dir, "grubenv")).Read()
	if err != nil {
		t.Fatal(err)
	}
	if env["ORDER"] != "A B" || env["B_OK"] != "0" || env["B_TRY"] != "0" {
		t.Errorf("grubenv %v, want untouched", env)
	}
	slotB, err := os.ReadFile(filepath.Join(c.dev.Dir, "slotB.img"))
	if err != nil || !bytes.Equal(slotB, make([]byte, 256<<10)) {
		t.Errorf("slot B written (%v)", err)
	}
}

// TestDownloadRemovesBundleWithBadSignature runs the DOWNLOAD phase alone:
// the failing phase itself removes the downloaded file (before any
// CLEANUP) and reports DOWNLOAD_FAILURE with a bundle error.
func TestDownloadRemovesBundleWithBadSignature(t *testing.T) {
	dir := t.TempDir()
	pki := bundletest.NewPKI(t, "ed25519")
	krPath := pki.WriteKeyring(t, dir)
	kr, err := bundle.LoadKeyring(krPath)
	if err != nil {
		t.Fatal(err)
	}
	good := bundletest.Build(t, pki.Signer(), map[string][]byte{"rootfs": bundletest.Image(64<<10, 3)}, bundletest.Options{Version: "2.0"})
	files := map[string][]byte{"/good.kfw": good, "/bad.kfw": corruptSignature(t, good)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(files[r.URL.Path]))
	}))
	t.Cleanup(srv.Close)
	dl, err := softwareupdate.NewDownloader(1, 0, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &fwagent.Domain{Name: "firmware", Keyring: kr, Compatible: "test-board", Downloader: dl, WorkDir: filepath.Join(dir, "downloads")}

	for _, tc := range []struct {
		name string
		want error
	}{
		{"good", nil},
		{"bad", bundle.ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundlePath := filepath.Join(dir, "downloads", tc.name, "bundle.kfw")
			data, _ := json.Marshal(map[string]any{"component": "os", "version": "2.0", "url": srv.URL + "/" + tc.name + ".kfw", "bundle": bundlePath})
			op := &updateagent.Operation{ActivityID: tc.name, Data: data, Actions: []updateapi.Action{
				{Component: updateapi.ComponentRef{ID: "firmware:os", Version: "2.0"}, Status: updateapi.ActionIdentified}}}
			err := d.Execute(context.Background(), updateapi.CommandDownload, op)
			_, statErr := os.Stat(bundlePath)
			if tc.want == nil {
				if err != nil || statErr != nil || op.Actions[0].Status != updateapi.ActionDownloadSuccess {
					t.Fatalf("good bundle: %v, stat %v, action %+v", err, statErr, op.Actions[0])
				}
				return
			}
			if !errors.Is(err, fwagent.ErrBundle) || !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v and %v", err, fwagent.ErrBundle, tc.want)
			}
			if !errors.Is(statErr, fs.ErrNotExist) {
				t.Errorf("downloaded bundle still there (stat: %v)", statErr)
			}
			if a := op.Actions[0]; a.Status != updateapi.ActionDownloadFailure || !strings.Contains(a.Message, bundle.ErrSignature.Error()) {
				t.Errorf("action %+v", a)
			}
		})
	}
}
