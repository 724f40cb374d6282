package softwareupdate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kantofw/kanto/services/internal/updateagent"
	"github.com/kantofw/kanto/services/internal/updateapi"
)

// Domain is the "software" domain agent: each desired component is a
// script-installed package. Component config keys (our choice; upstream
// has no script domain): url (required), sha256 | sha1 | md5 (one
// required), size (bytes, enables the size guard), filename (default: the
// URL's last segment), artifactType (archive | plain), group (default
// "software"). Installed packages are the installed dependencies (.prs
// files) shared with the SoftwareUpdatable feature; a package not in the
// desired state is removed. The feature's queue and this domain are not
// serialised with each other: a feature install and a campaign's UPDATE
// may run scripts at the same time (they share only installed-deps/).
type Domain struct {
	Name         string
	Storage      string
	Downloader   *Downloader
	Runner       Runner
	ArtifactType string
	Log          *slog.Logger
}

var _ updateagent.Domain = (*Domain)(nil)

// ErrComponent marks a desired component the domain cannot install.
var ErrComponent = errors.New("invalid software component")

type planItem struct {
	Action   int      `json:"action"`
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Group    string   `json:"group,omitempty"`
	Type     string   `json:"type,omitempty"`
	Artifact Artifact `json:"artifact"`
	Remove   bool     `json:"remove,omitempty"`
	Done     bool     `json:"done,omitempty"` // installed or removed
}

type plan struct {
	Dir   string     `json:"dir"`
	Items []planItem `json:"items"`
}

// CurrentState lists the installed dependencies under the agent's node.
func (d *Domain) CurrentState(context.Context) (updateapi.Inventory, error) {
	root := d.Name + "-update-agent"
	inv := updateapi.Inventory{SoftwareNodes: []updateapi.SoftwareNode{{
		ID: root, Name: "Software Update Agent", Type: updateapi.TypeApplication,
		Parameters: []updateapi.KeyValue{{Key: "domain", Value: d.Name}},
	}}}
	deps, err := loadDeps(d.Storage)
	if err != nil {
		return inv, err
	}
	for _, p := range deps {
		id := d.Name + ":" + p.Dep.Name
		inv.SoftwareNodes = append(inv.SoftwareNodes, updateapi.SoftwareNode{ID: id, Version: p.Dep.Version, Name: p.Dep.Name, Type: updateapi.TypeApplication,
			Parameters: []updateapi.KeyValue{{Key: "group", Value: p.Dep.Group}}})
		inv.Associations = append(inv.Associations, updateapi.Association{SourceID: root, TargetID: id})
	}
	return inv, nil
}

// Identify plans installs of changed packages and removals of unlisted ones.
func (d *Domain) Identify(_ context.Context, op *updateagent.Operation) error {
	deps, err := loadDeps(d.Storage)
	if err != nil {
		return err
	}
	installed := map[string]string{}
	for _, p := range deps {
		installed[p.Dep.Name] = p.Dep.Version
	}
	sum := sha256.Sum256([]byte(op.ActivityID))
	pl := plan{Dir: filepath.Join(d.Storage, "agent", hex.EncodeToString(sum[:8]))}
	want := map[string]bool{}
	for _, c := range op.Components() {
		want[c.ID] = true
		if v, ok := installed[c.ID]; ok && v == c.Version {
			continue
		}
		it, err := d.item(c)
		if err != nil {
			return err
		}
		it.Action = len(op.Actions)
		pl.Items = append(pl.Items, it)
		op.Actions = append(op.Actions, updateapi.Action{Component: updateapi.ComponentRef{ID: d.Name + ":" + c.ID, Version: c.Version},
			Status: updateapi.ActionIdentified, Message: "install " + c.ID + " " + c.Version + " from " + it.Artifact.Link})
	}
	for _, p := range deps {
		if want[p.Dep.Name] {
			continue
		}
		pl.Items = append(pl.Items, planItem{Action: len(op.Actions), Name: p.Dep.Name, Version: p.Dep.Version, Group: p.Dep.Group, Remove: true})
		op.Actions = append(op.Actions, updateapi.Action{Component: updateapi.ComponentRef{ID: d.Name + ":" + p.Dep.Name, Version: p.Dep.Version},
			Status: updateapi.ActionIdentified, Message: "remove " + p.Dep.Name})
	}
	b, _ := json.Marshal(pl)
	op.Data = b
	return nil
}

func (d *Domain) item(c updateapi.Component) (planItem, error) {
	get := func(k string) string { v, _ := updateapi.ConfigValue(c.Config, k); return v }
	it := planItem{Name: c.ID, Version: c.Version, Group: get("group"), Type: get("artifactType")}
	if it.Group == "" {
		it.Group = "software"
	}
	link := get("url")
	u, err := url.Parse(link)
	if link == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return it, fmt.Errorf("component %s: config key url must be an http(s) URL: %w", c.ID, ErrComponent)
	}
	a := Artifact{Link: link, FileName: get("filename")}
	if a.FileName == "" {
		a.FileName = path.Base(u.Path)
	}
	if err := checkFileName(a.FileName); err != nil {
		return it, fmt.Errorf("component %s: %w", c.ID, err)
	}
	for _, h := range []string{"sha256", "sha1", "md5"} {
		if v := get(h); v != "" {
			a.HashType, a.HashValue = strings.ToUpper(h), v
			break
		}
	}
	if a.HashType == "" {
		return it, fmt.Errorf("component %s: one of the config keys sha256, sha1 or md5 is required: %w", c.ID, ErrComponent)
	}
	if s := get("size"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return it, fmt.Errorf("component %s: size %q: %w", c.ID, s, ErrComponent)
		}
		a.Size = n
	}
	it.Artifact = a
	return it, nil
}

func loadPlan(op *updateagent.Operation) (*plan, error) {
	var pl plan
	if err := json.Unmarshal(op.Data, &pl); err != nil {
		return nil, fmt.Errorf("persisted plan: %w", err)
	}
	return &pl, nil
}

func savePlan(op *updateagent.Operation, pl *plan) error {
	b, _ := json.Marshal(pl)
	op.Data = b
	return op.Save()
}

// Execute runs one phase over the plan.
func (d *Domain) Execute(ctx context.Context, cmd updateapi.CommandType, op *updateagent.Operation) error {
	pl, err := loadPlan(op)
	if err != nil {
		return err
	}
	switch cmd {
	case updateapi.CommandDownload:
		return d.download(ctx, op, pl)
	case updateapi.CommandUpdate:
		return d.update(ctx, op, pl)
	case updateapi.CommandActivate:
		for _, it := range pl.Items {
			st := updateapi.ActionActivationSuccess
			if it.Remove {
				st = updateapi.ActionRemovalSuccess
			}
			op.Actions[it.Action].Status, op.Actions[it.Action].Progress = st, 100
		}
		return nil
	case updateapi.CommandRollback:
		var done []string
		for _, it := range pl.Items {
			if it.Done {
				done = append(done, it.Name)
			}
		}
		if len(done) > 0 {
			return fmt.Errorf("script installs cannot be undone: %s already applied", strings.Join(done, ", "))
		}
		return os.RemoveAll(pl.Dir)
	case updateapi.CommandCleanup:
		return os.RemoveAll(pl.Dir)
	}
	return nil
}

func (d *Domain) itemDir(pl *plan, it planItem) string {
	return filepath.Join(pl.Dir, strconv.Itoa(it.Action))
}

func (d *Domain) download(ctx context.Context, op *updateagent.Operation, pl *plan) error {
	for _, it := range pl.Items {
		if it.Remove {
			continue
		}
		dir := d.itemDir(pl, it)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		op.SetAction(ctx, it.Action, updateapi.ActionDownloading, 0, "downloading "+it.Artifact.FileName)
		last := 0
		err := d.Downloader.Fetch(ctx, it.Artifact, dir, func(n int64) {
			if it.Artifact.Size <= 0 {
				return
			}
			// Feedback every 10%: every action update is a full message.
			if p := int(n * 100 / it.Artifact.Size); p/10 > last/10 && p < 100 {
				last = p
				op.SetAction(ctx, it.Action, updateapi.ActionDownloading, p, "downloading "+it.Artifact.FileName)
			}
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			op.Actions[it.Action].Status, op.Actions[it.Action].Message = updateapi.ActionDownloadFailure, failureMessage(err)
			return fmt.Errorf("%s: %s", it.Name, failureMessage(err))
		}
		op.Actions[it.Action].Status, op.Actions[it.Action].Progress, op.Actions[it.Action].Message = updateapi.ActionDownloadSuccess, 100, ""
	}
	return nil
}

func (d *Domain) update(ctx context.Context, op *updateagent.Operation, pl *plan) error {
	for i := range pl.Items {
		it := &pl.Items[i]
		if it.Done {
			continue
		}
		if it.Remove {
			op.SetAction(ctx, it.Action, updateapi.ActionRemoving, 0, "")
			if _, err := removeDeps(d.Storage, DependencyDescribe{Name: it.Name, Group: it.Group}); err != nil {
				op.Actions[it.Action].Status, op.Actions[it.Action].Message = updateapi.ActionRemovalFailure, err.Error()
				return fmt.Errorf("remove %s: %w", it.Name, err)
			}
			op.Actions[it.Action].Status, op.Actions[it.Action].Progress = updateapi.ActionRemovalSuccess, 100
		} else if err := d.install(ctx, op, it, d.itemDir(pl, *it)); err != nil {
			return err
		}
		it.Done = true
		if err := savePlan(op, pl); err != nil {
			return err
		}
	}
	return nil
}

func (d *Domain) install(ctx context.Context, op *updateagent.Operation, it *planItem, dir string) error {
	op.SetAction(ctx, it.Action, updateapi.ActionUpdating, 0, "running the install script")
	typ := it.Type
	if typ == "" {
		typ = d.ArtifactType
	}
	fail := func(err error, code string) error {
		msg := failureMessage(err)
		if code != "" {
			msg += " (exit code " + code + ")"
		}
		op.Actions[it.Action].Status, op.Actions[it.Action].Message = updateapi.ActionUpdateFailure, msg
		return fmt.Errorf("%s: %s", it.Name, msg)
	}
	if typ != "plain" {
		if err := extractArchives(dir); err != nil {
			return fail(err, "")
		}
	}
	st, err := d.Runner.Run(ctx, dir, func(s ScriptStatus) {
		op.SetAction(ctx, it.Action, updateapi.ActionUpdating, s.Progress, s.Message)
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var se *ScriptError
		if errors.As(err, &se) {
			return fail(err, strconv.Itoa(se.Code))
		}
		return fail(err, "")
	}
	if err := collectDeps(d.Storage, dir, ""); err != nil {
		return fail(fmt.Errorf("%w: %w", errDeps, err), "")
	}
	deps, _ := loadDeps(d.Storage)
	if !slices.ContainsFunc(deps, func(p prsFile) bool { return p.Dep.Name == it.Name && p.Dep.Version == it.Version }) {
		// The script did not describe itself: record the component.
		if _, err := removeDeps(d.Storage, DependencyDescribe{Name: it.Name}); err != nil {
			return fail(err, "")
		}
		if err := writePRS(d.Storage, DependencyDescribe{Group: it.Group, Name: it.Name, Version: it.Version}); err != nil {
			return fail(fmt.Errorf("%w: %w", errDeps, err), "")
		}
	}
	op.Actions[it.Action].Status, op.Actions[it.Action].Progress, op.Actions[it.Action].Message = updateapi.ActionUpdateSuccess, 100, st.Message
	return nil
}
