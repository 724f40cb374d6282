package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kantofw/kanto/services/containers/mgr"
	"github.com/kantofw/kanto/services/containers/model"
)

// Deploy creates (or updates) containers from the *.json descriptors under
// cfg.CtrDir, matching existing containers by name. A descriptor without
// container_name is named after its file (without .json), so restarts never
// duplicate it. Containers absent from the folder are left alone.
func Deploy(ctx context.Context, m *mgr.Manager, cfg DeployConfig, log *slog.Logger) error {
	if _, err := os.Stat(cfg.CtrDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := checkDeployDir(cfg.CtrDir); err != nil {
		return err
	}
	marker := filepath.Join(cfg.HomeDir, "deployment")
	if cfg.Mode == "init" {
		if _, err := os.Stat(marker); err == nil || len(m.List()) > 0 {
			log.Info("init deployment already done")
			return nil
		}
	} else if cfg.Mode != "update" {
		log.Warn("unknown deployment mode, using update", "mode", cfg.Mode)
	}
	var files []string
	err := filepath.WalkDir(cfg.CtrDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".json") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		if ctx.Err() != nil {
			return nil // shutting down; the next start carries on
		}
		// An operation once begun is finished even if shutdown starts.
		if err := deployOne(context.WithoutCancel(ctx), m, f, log); err != nil {
			log.Error("deployment descriptor", "file", f, "err", err)
		}
	}
	if err := os.MkdirAll(cfg.HomeDir, 0o755); err == nil {
		_ = os.WriteFile(marker, nil, 0o644)
	}
	return nil
}

// checkDeployDir fails for a path that exists but is not a directory,
// which (as upstream) aborts the daemon start.
func checkDeployDir(dir string) error {
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("deployment directory %s is not a directory", dir)
	}
	return nil
}

func deployOne(ctx context.Context, m *mgr.Manager, file string, log *slog.Logger) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	want, err := model.Decode(file, data)
	if err != nil {
		return err
	}
	if want.Name == "" {
		want.Name = strings.TrimSuffix(filepath.Base(file), ".json")
	}
	model.FillDefaults(want)
	if err := model.Validate(want); err != nil {
		return err
	}
	var cur *model.Container
	for _, c := range m.List() {
		if c.Name == want.Name {
			if cur != nil {
				return fmt.Errorf("more than one container named %s", want.Name)
			}
			cur = c
		}
	}
	if cur != nil && want.ID == cur.ID {
		// Same id on purpose: compare as an update of itself.
	} else if cur != nil {
		want.ID = ""
		model.FillDefaults(want)
	}
	action := model.DetermineUpdateAction(cur, want)
	log.Info("deploying", "name", want.Name, "action", action)
	switch action {
	case model.ActionCreate:
		c, err := m.Create(ctx, want, nil)
		if err != nil {
			return err
		}
		return m.Start(ctx, c.ID)
	case model.ActionRecreate:
		want.ID = ""
		nc, err := m.Create(ctx, want, nil)
		if err != nil {
			return err
		}
		if cur.State.Status == model.Running || cur.State.Status == model.Paused {
			if err := m.Stop(ctx, cur.ID, &model.StopOptions{Force: true}); err != nil {
				_ = m.Remove(ctx, nc.ID, true, nil)
				return err
			}
		}
		if err := m.Start(ctx, nc.ID); err != nil {
			_ = m.Remove(ctx, nc.ID, true, nil)
			_ = m.Start(ctx, cur.ID)
			return err
		}
		return m.Remove(ctx, cur.ID, true, nil)
	case model.ActionUpdate:
		if err := m.Update(ctx, cur.ID, &model.UpdateOptions{RestartPolicy: want.HostConfig.RestartPolicy, Resources: orEmpty(want.HostConfig.Resources)}); err != nil {
			return err
		}
		fallthrough
	default:
		return ensureRunning(ctx, m, cur.ID)
	}
}

func orEmpty(r *model.Resources) *model.Resources {
	if r == nil {
		return &model.Resources{}
	}
	return r
}

func ensureRunning(ctx context.Context, m *mgr.Manager, id string) error {
	c, err := m.Get(id)
	if err != nil {
		return err
	}
	switch c.State.Status {
	case model.Paused:
		return m.Unpause(ctx, id)
	case model.Running:
		return nil
	case model.Stopped:
		if c.ManuallyStopped {
			return nil // a manual stop is respected across restarts
		}
	}
	return m.Start(ctx, id)
}
