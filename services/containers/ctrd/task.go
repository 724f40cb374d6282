package ctrd

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/events"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/image-spec/identity"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// SnapshotKey is the snapshot prepared for container id.
func SnapshotKey(id string) string { return id + "-snapshot" }

// PrepareSnapshot creates the container's writable snapshot on top of the
// image (under the lease, so containerd's GC keeps it).
func (c *Client) PrepareSnapshot(ctx context.Context, id string, img containerd.Image) error {
	ctx = c.leaseCtx(ctx)
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return imageErr("image rootfs: %w", err)
	}
	parent := identity.ChainID(diffIDs).String()
	sn := c.c.SnapshotService(c.cfg.Snapshotter)
	if _, err := sn.Stat(ctx, SnapshotKey(id)); err == nil {
		return nil
	}
	if _, err := sn.Prepare(ctx, SnapshotKey(id), parent, snapshots.WithLabels(map[string]string{"containerd.io/gc.root": ""})); err != nil {
		return fmt.Errorf("prepare snapshot: %w", err)
	}
	return nil
}

// RemoveSnapshot deletes the container's snapshot; a missing one is fine.
func (c *Client) RemoveSnapshot(ctx context.Context, id string) error {
	err := c.c.SnapshotService(c.cfg.Snapshotter).Remove(c.leaseCtx(ctx), SnapshotKey(id))
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove snapshot: %w", err)
	}
	return nil
}

// HasSnapshot reports whether the container's snapshot exists.
func (c *Client) HasSnapshot(ctx context.Context, id string) bool {
	_, err := c.c.SnapshotService(c.cfg.Snapshotter).Stat(c.nsCtx(ctx), SnapshotKey(id))
	return err == nil
}

// Exit is how a task ended.
type Exit struct {
	Code uint32
	At   time.Time
	Err  error
}

func exitChan(ctx context.Context, task containerd.Task) (<-chan Exit, error) {
	st, err := task.Wait(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan Exit, 1)
	// Owned by the task: ends when the task exits or ctx (the daemon's run
	// context) ends.
	go func() {
		s := <-st
		code, at, err := s.Result()
		out <- Exit{Code: code, At: at, Err: err}
	}()
	return out, nil
}

// Run creates the containerd container and task for s and starts it.
// waitCtx bounds the exit watch (the daemon's lifetime).
func (c *Client) Run(ctx, waitCtx context.Context, s RunSpec) (uint32, <-chan Exit, error) {
	ctx = c.nsCtx(ctx)
	waitCtx = c.nsCtx(waitCtx)
	ctr := s.Container
	img, err := c.EnsureImage(ctx, ctr.Image.Name, nil)
	if err != nil {
		return 0, nil, err
	}
	if !c.HasSnapshot(ctx, ctr.ID) {
		// Lost (e.g. removed by hand): start from a fresh copy of the image
		// rather than refusing, as upstream does.
		c.log.Warn("snapshot missing, preparing a new one", "id", ctr.ID)
		if err := c.PrepareSnapshot(ctx, ctr.ID, img); err != nil {
			return 0, nil, fmt.Errorf("snapshot for container with ID = %s does not exist: %w", ctr.ID, err)
		}
	}
	opts, err := c.specOpts(img, s)
	if err != nil {
		return 0, nil, err
	}
	// Leftovers of an earlier run (a crash between create and delete).
	_ = c.Cleanup(ctx, ctr.ID)
	cc, err := c.c.NewContainer(ctx, ctr.ID,
		containerd.WithSnapshotter(c.cfg.Snapshotter),
		containerd.WithSnapshot(SnapshotKey(ctr.ID)),
		containerd.WithImageName(ctr.Image.Name),
		containerd.WithRuntime(c.runtime(ctr.HostConfig.Runtime), nil),
		containerd.WithNewSpec(opts...),
		containerd.WithContainerLabels(map[string]string{"kanto-cm.name": ctr.Name}))
	if err != nil {
		return 0, nil, fmt.Errorf("create containerd container: %w", err)
	}
	var ioc cio.Creator = cio.NullIO
	switch {
	case s.Streams != nil:
		ioc = cio.NewCreator(append(s.Streams.opts(), cio.WithFIFODir(c.cfg.FIFODir))...)
	case s.LogFile != "":
		ioc = cio.BinaryIO(c.cfg.LogBinary, logArgs(s))
	}
	task, err := cc.NewTask(ctx, ioc)
	if err != nil {
		_ = cc.Delete(ctx)
		return 0, nil, fmt.Errorf("create task: %w", err)
	}
	if s.Streams != nil {
		c.keepIO(ctr.ID, task.IO())
	}
	exit, err := exitChan(waitCtx, task)
	if err != nil {
		_, _ = task.Delete(ctx, containerd.WithProcessKill)
		_ = cc.Delete(ctx)
		return 0, nil, fmt.Errorf("wait task: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		_, _ = task.Delete(ctx, containerd.WithProcessKill)
		_ = cc.Delete(ctx)
		return 0, nil, fmt.Errorf("start task: %w", err)
	}
	return task.Pid(), exit, nil
}

func (c *Client) runtime(rt string) string {
	switch rt {
	case "", "io.containerd.runc.v1", "io.containerd.runc.v2", "io.containerd.runtime.v1.linux":
		return c.cfg.Runtime
	}
	return rt
}

// TaskState is a live task's status after a daemon restart.
type TaskState struct {
	Pid    uint32
	Status containerd.ProcessStatus
	// ExitCode is set when Status is Stopped.
	ExitCode uint32
	Exit     <-chan Exit
}

func (c *Client) keepIO(id string, io cio.IO) {
	if io == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.ios[id]; old != nil {
		old.Cancel()
		_ = old.Close()
	}
	c.ios[id] = io
}

// releaseIO waits for an interactive task's output to be copied and closes
// its FIFOs.
func (c *Client) releaseIO(id string) {
	c.mu.Lock()
	io := c.ios[id]
	delete(c.ios, id)
	c.mu.Unlock()
	if io != nil {
		done := make(chan struct{})
		go func() { io.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			io.Cancel()
		}
		_ = io.Close()
	}
}

// CloseStdin closes an interactive task's standard input.
func (c *Client) CloseStdin(ctx context.Context, id string) error {
	ctx = c.nsCtx(ctx)
	t, err := c.task(ctx, id)
	if err != nil {
		return err
	}
	return t.CloseIO(ctx, containerd.WithStdinCloser)
}

// Reattach finds the running task of container id again (after a daemon
// restart) and watches its exit. ErrNotRunning means there is none.
// streams re-connect an interactive task's FIFOs; nil for others.
func (c *Client) Reattach(ctx, waitCtx context.Context, id string, streams *Streams) (*TaskState, error) {
	ctx = c.nsCtx(ctx)
	cc, err := c.c.LoadContainer(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, ErrNotRunning
		}
		return nil, err
	}
	var attach cio.Attach
	if streams != nil {
		attach = cio.NewAttach(streams.opts()...)
	}
	task, err := cc.Task(ctx, attach)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, ErrNotRunning
		}
		return nil, err
	}
	if streams != nil {
		c.keepIO(id, task.IO())
	}
	st, err := task.Status(ctx)
	if err != nil {
		return nil, err
	}
	if st.Status == containerd.Stopped {
		return &TaskState{Pid: task.Pid(), Status: st.Status, ExitCode: st.ExitStatus}, nil
	}
	exit, err := exitChan(c.nsCtx(waitCtx), task)
	if err != nil {
		return nil, err
	}
	return &TaskState{Pid: task.Pid(), Status: st.Status, Exit: exit}, nil
}

func (c *Client) task(ctx context.Context, id string) (containerd.Task, error) {
	cc, err := c.c.LoadContainer(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, ErrNotRunning
		}
		return nil, err
	}
	t, err := cc.Task(ctx, nil)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, ErrNotRunning
		}
		return nil, err
	}
	return t, nil
}

// Kill sends sig to the task's init process, or all processes.
func (c *Client) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	ctx = c.nsCtx(ctx)
	t, err := c.task(ctx, id)
	if err != nil {
		return err
	}
	var opts []containerd.KillOpts
	if all {
		opts = append(opts, containerd.WithKillAll)
	}
	if err := t.Kill(ctx, sig, opts...); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// Cleanup deletes the task (killing it if needed) and the containerd
// container; missing objects are fine.
func (c *Client) Cleanup(ctx context.Context, id string) error {
	ctx = c.nsCtx(ctx)
	defer c.releaseIO(id)
	cc, err := c.c.LoadContainer(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	if t, err := cc.Task(ctx, nil); err == nil {
		if _, err := t.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task: %w", err)
		}
	}
	if err := cc.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container: %w", err)
	}
	return nil
}

// Pause freezes the task.
func (c *Client) Pause(ctx context.Context, id string) error {
	ctx = c.nsCtx(ctx)
	t, err := c.task(ctx, id)
	if err != nil {
		return err
	}
	return t.Pause(ctx)
}

// Resume thaws the task.
func (c *Client) Resume(ctx context.Context, id string) error {
	ctx = c.nsCtx(ctx)
	t, err := c.task(ctx, id)
	if err != nil {
		return err
	}
	return t.Resume(ctx)
}

// UpdateMemory changes a running task's memory limits.
func (c *Client) UpdateMemory(ctx context.Context, id string, m *specs.LinuxMemory) error {
	ctx = c.nsCtx(ctx)
	t, err := c.task(ctx, id)
	if err != nil {
		return err
	}
	return t.Update(ctx, containerd.WithResources(&specs.LinuxResources{Memory: m}))
}

// OOMEvents delivers the ids of containers whose task hit an OOM kill, until
// ctx ends.
func (c *Client) OOMEvents(ctx context.Context) <-chan string {
	ctx = c.nsCtx(ctx)
	out := make(chan string, 16)
	evs, errs := c.c.Subscribe(ctx, fmt.Sprintf(`namespace==%s,topic=="/tasks/oom"`, c.cfg.Namespace))
	// Owned by the caller's ctx: ends with it or with the event stream.
	go func() {
		defer close(out)
		for {
			select {
			case e := <-evs:
				if e == nil {
					return
				}
				id, err := oomID(e)
				if err != nil {
					c.log.Warn("oom event", "err", err)
					continue
				}
				select {
				case out <- id:
				case <-ctx.Done():
					return
				}
			case err := <-errs:
				if err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
					c.log.Warn("containerd event stream ended", "err", err)
				}
				return
			}
		}
	}()
	return out
}

func oomID(e *events.Envelope) (string, error) {
	v, err := typeurl.UnmarshalAny(e.Event)
	if err != nil {
		return "", err
	}
	oom, ok := v.(*apievents.TaskOOM)
	if !ok {
		return "", fmt.Errorf("unexpected event %T", v)
	}
	return oom.ContainerID, nil
}
