package mgr

import (
	"context"
	"errors"

	"github.com/containerd/containerd"

	"github.com/kantofw/kanto/services/containers/ctrd"
	"github.com/kantofw/kanto/services/containers/model"
)

// Restore reconciles the records with containerd after the daemon starts:
//
//	record              containerd task        result
//	Running/Paused      running or paused      re-attached, still managed
//	Running/Paused      exited meanwhile       Exited with its code, then policy
//	Running/Paused      none (host rebooted)   Exited, then policy
//	Dead                -                      record deleted
//	Created             -                      unchanged
//	Stopped/Exited      -                      restarted if the policy asks
//
// Containers whose policy asks for a restart are started in parallel.
func (m *Manager) Restore(ctx context.Context) {
	m.mu.Lock()
	es := make([]*entry, 0, len(m.entries))
	for _, e := range m.entries {
		es = append(es, e)
	}
	m.mu.Unlock()
	for _, e := range es {
		e.mu.Lock()
		m.restoreOne(ctx, e)
		e.mu.Unlock()
	}
}

func (m *Manager) restoreOne(ctx context.Context, e *entry) {
	c := e.c
	log := m.log.With("id", c.ID)
	switch c.State.Status {
	case model.Dead, model.Creating:
		_ = m.rt.Cleanup(ctx, c.ID)
		_ = m.rt.RemoveSnapshot(ctx, c.ID)
		_ = m.db.delete(c.ID)
		e.removed = true
		m.mu.Lock()
		delete(m.entries, c.ID)
		m.mu.Unlock()
		return
	case model.Running, model.Paused:
		var streams *ctrd.Streams
		if c.IOConfig != nil && c.IOConfig.OpenStdin {
			e.hub = newHub()
			logPath, size, files := "", int64(0), 0
			if dc := c.HostConfig.LogConfig.DriverConfig; dc.Type == model.LogDriverJSONFile {
				logPath, files = m.LogPath(c), dc.MaxFiles
				size, _ = model.ParseSize(dc.MaxSize)
			}
			var serr error
			if streams, serr = e.hub.streams(c, logPath, size, files); serr != nil {
				log.Error("interactive streams", "err", serr)
			}
		}
		ts, err := m.rt.Reattach(ctx, m.runCtx, c.ID, streams)
		switch {
		case err == nil && ts.Status != containerd.Stopped:
			c.State.Pid = int64(ts.Pid)
			if ts.Status == containerd.Paused {
				c.State.Status, c.State.Paused, c.State.Running = model.Paused, true, false
			} else {
				c.State.Status, c.State.Paused, c.State.Running = model.Running, false, true
			}
			m.watch(e, ts.Exit)
			_ = m.save(c)
			log.Info("re-attached to running container", "pid", ts.Pid)
			return
		case err == nil:
			code := int64(ts.ExitCode)
			m.finish(ctx, e, model.Exited, code, "")
			log.Info("container exited while the daemon was down", "exit_code", code)
		case errors.Is(err, ctrd.ErrNotRunning):
			m.finish(ctx, e, model.Exited, 0, "the container was not running when the daemon started (host reboot?)")
			c.State.Exited = true
			log.Info("container no longer running (host reboot?)")
		default:
			log.Error("re-attach failed", "err", err)
			return
		}
		m.publish("exited", c)
	}
	if st := c.State.Status; (st == model.Exited || st == model.Stopped) && shouldRestart(c, c.State.ExitCode) {
		if c.State.Error != "" && c.State.ExitCode == 0 && c.HostConfig.RestartPolicy.Type == model.RestartOnFailure {
			return
		}
		m.maybeRestart(e)
	}
}
