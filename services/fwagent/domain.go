// Package fwagent is the "firmware" domain agent of the update manager: it
// drives the A/B OTA agent (package ota) through the Update Agent API
// phases.
//
//	DOWNLOAD  fetch the bundle (Range resume, optional sha256) and stream it
//	          through the bundle reader: signature, compatibility, version
//	          and every chunk hash are checked; nothing is written to a slot
//	UPDATE    ota Install: write the inactive slot and arm it (trial boot)
//	ACTIVATE  ota Reboot into the new slot; after the boot the agent's
//	          start runs ota Resume (health checks: commit or roll back) and
//	          the resumed ACTIVATE reports the verdict
//	ROLLBACK  ota Rollback (before the reboot: the armed slot is marked bad)
//	CLEANUP   remove the downloaded bundle
//
// The phases hold across the reboot: the updateagent library persists the
// operation (status ACTIVATING), and ota persists its own record.
package fwagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/ota"
	"github.com/kantofw/kanto/services/internal/updateagent"
	"github.com/kantofw/kanto/services/internal/updateapi"
	"github.com/kantofw/kanto/services/softwareupdate"
)

// OTA is what the domain needs of the firmware update agent (*ota.Agent).
// Install, Reboot and Rollback return ota.ErrBusy when the update state
// does not allow them; Reboot does not return on a real device.
type OTA interface {
	Install(ctx context.Context, source string) (ota.Record, error)
	Reboot(ctx context.Context) error
	Rollback(ctx context.Context) (ota.Record, error)
	Status() (ota.Status, error)
}

var _ OTA = (*ota.Agent)(nil)

// Error categories.
var (
	ErrComponent = errors.New("invalid firmware component")
	ErrBundle    = errors.New("bundle rejected")
)

// Domain is the firmware domain.
type Domain struct {
	Name       string // "firmware"
	OTA        OTA
	Keyring    *bundle.Keyring
	Compatible string
	Downloader *softwareupdate.Downloader
	WorkDir    string
	// BaseVersion is reported for a slot whose status has no version (the
	// factory image).
	BaseVersion string
	Log         *slog.Logger
}

var _ updateagent.Domain = (*Domain)(nil)

type fwPlan struct {
	Component   string `json:"component"`
	Version     string `json:"version"`
	URL         string `json:"url"`
	SHA256      string `json:"sha256,omitempty"`
	Size        int64  `json:"size,omitempty"`
	Bundle      string `json:"bundle"`
	Transaction string `json:"transaction,omitempty"`
}

// current returns the booted slot and the firmware version it runs.
func (d *Domain) current() (slotName, version string, err error) {
	st, err := d.OTA.Status()
	if err != nil {
		return "", "", err
	}
	version = d.BaseVersion
	if s, ok := st.Slots[st.Booted]; ok && s.Version != "" {
		version = s.Version
	}
	return st.Booted, version, nil
}

// CurrentState reports the running firmware.
func (d *Domain) CurrentState(context.Context) (updateapi.Inventory, error) {
	root := d.Name + "-update-agent"
	booted, version, err := d.current()
	if err != nil {
		return updateapi.Inventory{}, err
	}
	id := d.Name + ":" + "os"
	return updateapi.Inventory{
		SoftwareNodes: []updateapi.SoftwareNode{
			{ID: root, Name: "Firmware Update Agent", Type: updateapi.TypeApplication, Parameters: []updateapi.KeyValue{{Key: "domain", Value: d.Name}}},
			{ID: id, Name: "A/B firmware", Version: version, Type: updateapi.TypeImage, Parameters: []updateapi.KeyValue{{Key: "slot", Value: booted}}},
		},
		Associations: []updateapi.Association{{SourceID: root, TargetID: id}},
	}, nil
}

// Identify plans an update when the desired version differs from the
// running one. The domain takes exactly one component (any ID; reported
// as "os"); its config keys are url (required), sha256 and size.
func (d *Domain) Identify(_ context.Context, op *updateagent.Operation) error {
	comps := op.Components()
	if len(comps) == 0 {
		return nil // nothing desired: keep what runs
	}
	if len(comps) > 1 {
		return fmt.Errorf("the firmware domain takes one component, got %d: %w", len(comps), ErrComponent)
	}
	c := comps[0]
	_, version, err := d.current()
	if err != nil {
		return err
	}
	if c.Version == version {
		return nil
	}
	get := func(k string) string { v, _ := updateapi.ConfigValue(c.Config, k); return v }
	u, err := url.Parse(get("url"))
	if get("url") == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("component %s: config key url must be an http(s) URL: %w", c.ID, ErrComponent)
	}
	sum := sha256.Sum256([]byte(op.ActivityID))
	p := fwPlan{Component: c.ID, Version: c.Version, URL: get("url"), SHA256: get("sha256"),
		Bundle: filepath.Join(d.WorkDir, hex.EncodeToString(sum[:8]), "bundle.kfw")}
	if s := get("size"); s != "" {
		if p.Size, err = strconv.ParseInt(s, 10, 64); err != nil || p.Size < 0 {
			return fmt.Errorf("component %s: size %q: %w", c.ID, s, ErrComponent)
		}
	}
	op.Data, _ = json.Marshal(p)
	op.Actions = append(op.Actions, updateapi.Action{
		Component: updateapi.ComponentRef{ID: d.Name + ":" + c.ID, Version: c.Version},
		Status:    updateapi.ActionIdentified, Message: "install firmware " + version + " → " + c.Version + " into the inactive slot",
	})
	return nil
}

// Execute runs one phase.
func (d *Domain) Execute(ctx context.Context, cmd updateapi.CommandType, op *updateagent.Operation) error {
	var p fwPlan
	if err := json.Unmarshal(op.Data, &p); err != nil {
		return fmt.Errorf("persisted plan: %w", err)
	}
	set := func(st updateapi.ActionStatus, progress int, msg string) {
		op.Actions[0].Status, op.Actions[0].Progress, op.Actions[0].Message = st, progress, msg
	}
	switch cmd {
	case updateapi.CommandDownload:
		if err := d.download(ctx, &p); err != nil {
			set(updateapi.ActionDownloadFailure, 0, err.Error())
			return err
		}
		set(updateapi.ActionDownloadSuccess, 100, "bundle "+p.Version+" verified")
	case updateapi.CommandUpdate:
		r, err := d.OTA.Install(ctx, p.Bundle)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			set(updateapi.ActionUpdateFailure, 0, err.Error())
			return fmt.Errorf("install: %w", err)
		}
		p.Transaction = r.Transaction
		op.Data, _ = json.Marshal(p)
		set(updateapi.ActionUpdateSuccess, 100, "slot "+r.Target+" written and armed")
	case updateapi.CommandActivate:
		return d.activate(ctx, op, &p, set)
	case updateapi.CommandRollback:
		st, err := d.OTA.Status()
		if err != nil {
			return err
		}
		if st.Record.Transaction == p.Transaction && !st.Record.State.Terminal() {
			if _, err := d.OTA.Rollback(ctx); err != nil {
				return fmt.Errorf("rollback: %w", err)
			}
		}
		set(updateapi.ActionUpdateFailure, 0, "rolled back")
	case updateapi.CommandCleanup:
		return os.RemoveAll(filepath.Dir(p.Bundle))
	}
	return nil
}

// activate reboots into the new slot, or after the reboot reports what the
// OTA agent's health verdict was.
func (d *Domain) activate(ctx context.Context, op *updateagent.Operation, p *fwPlan, set func(updateapi.ActionStatus, int, string)) error {
	st, err := d.OTA.Status()
	if err != nil {
		return err
	}
	r := st.Record
	if r.Transaction != p.Transaction {
		return fmt.Errorf("the firmware update record is transaction %q, not ours (%q)", r.Transaction, p.Transaction)
	}
	switch r.State {
	case ota.StateCommitted:
		set(updateapi.ActionActivationSuccess, 100, "running slot "+r.Target+", committed")
		return nil
	case ota.StateRolledBack, ota.StateFailed:
		set(updateapi.ActionActivationFailure, 0, "rolled back to slot "+r.Previous+": "+r.Error)
		return fmt.Errorf("firmware %s %s: %s", p.Version, r.State, r.Error)
	case ota.StateInstalled:
		op.SetAction(ctx, 0, updateapi.ActionActivating, 0, "rebooting into slot "+r.Target)
		if err := d.OTA.Reboot(ctx); err != nil {
			set(updateapi.ActionActivationFailure, 0, err.Error())
			return fmt.Errorf("reboot: %w", err)
		}
		// The device is going down; ACTIVATE resumes after the boot.
		<-ctx.Done()
		return ctx.Err()
	default:
		// rebooting/verifying: the start of the agent runs ota Resume
		// before phases resume, so this is a verdict still pending.
		return fmt.Errorf("firmware update is %s; the health verdict is pending", r.State)
	}
}

// download fetches the bundle and verifies it completely without writing
// a slot.
func (d *Domain) download(ctx context.Context, p *fwPlan) error {
	dir := filepath.Dir(p.Bundle)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	a := softwareupdate.Artifact{FileName: filepath.Base(p.Bundle), Size: p.Size, Link: p.URL, HashType: "SHA256", HashValue: p.SHA256}
	if p.SHA256 == "" {
		// The bundle signature and chunk hashes protect it; the transport
		// hash is optional. Download without one.
		a.HashType = softwareupdate.HashNone
	}
	if err := d.Downloader.Fetch(ctx, a, dir, func(int64) {}); err != nil {
		return err
	}
	f, err := os.Open(p.Bundle)
	if err != nil {
		return err
	}
	defer f.Close()
	br, err := bundle.Open(f, bundle.VerifyOptions{Keyring: d.Keyring, Compatible: d.Compatible})
	if err != nil {
		_ = os.Remove(p.Bundle)
		return fmt.Errorf("%w: %w", ErrBundle, err)
	}
	if v := br.Manifest().Version; v != p.Version {
		_ = os.Remove(p.Bundle)
		return fmt.Errorf("%w: bundle version %q, desired %q", ErrBundle, v, p.Version)
	}
	for {
		_, ir, err := br.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			_ = os.Remove(p.Bundle)
			return fmt.Errorf("%w: %w", ErrBundle, err)
		}
		if _, err := io.Copy(io.Discard, ir); err != nil {
			_ = os.Remove(p.Bundle)
			return fmt.Errorf("%w: %w", ErrBundle, err)
		}
	}
}
