package daemon

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	ctrsvc "github.com/kantofw/kanto/services/containers/api/services/containers"
	imgsvc "github.com/kantofw/kanto/services/containers/api/services/images"
	syssvc "github.com/kantofw/kanto/services/containers/api/services/sysinfo"
	systypes "github.com/kantofw/kanto/services/containers/api/types/sysinfo"
	"github.com/kantofw/kanto/services/containers/ctrd"
	"github.com/kantofw/kanto/services/containers/logdriver"
	"github.com/kantofw/kanto/services/containers/mgr"
	"github.com/kantofw/kanto/services/containers/model"
	"github.com/kantofw/kanto/services/containers/protoconv"
)

// Version and API version reported by SystemInfo; Version is set with
// -ldflags "-X github.com/kantofw/kanto/services/containers/daemon.Version=...".
var (
	Version   = "0.1.0"
	GitCommit = "unknown"
	BuildTime = "unknown"
)

// APIVersion is the upstream API version we are compatible with.
const APIVersion = "0.1.0"

// grpcErr turns a manager error into the status upstream clients expect:
// code Unknown with the message text.
func grpcErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

type containersServer struct {
	ctrsvc.UnimplementedContainersServer
	m *mgr.Manager
}

func (s *containersServer) Create(ctx context.Context, r *ctrsvc.CreateContainerRequest) (*ctrsvc.CreateContainerResponse, error) {
	c := protoconv.FromProto(r.GetContainer())
	if c == nil {
		return nil, grpcErr(model.Errorf(model.ErrInvalid, "the containers image configuration is invalid"))
	}
	// Status and runtime data are the daemon's, never the client's.
	c.State, c.NetworkSettings = nil, nil
	out, err := s.m.Create(ctx, c, nil)
	if err != nil {
		return nil, grpcErr(err)
	}
	return &ctrsvc.CreateContainerResponse{Container: protoconv.ToProto(out)}, nil
}

func (s *containersServer) Get(_ context.Context, r *ctrsvc.GetContainerRequest) (*ctrsvc.GetContainerResponse, error) {
	c, err := s.m.Get(r.GetId())
	if errors.Is(err, model.ErrNotFound) {
		return &ctrsvc.GetContainerResponse{}, nil // upstream: no container, no error
	}
	if err != nil {
		return nil, grpcErr(err)
	}
	return &ctrsvc.GetContainerResponse{Container: protoconv.ToProto(c)}, nil
}

func (s *containersServer) List(context.Context, *ctrsvc.ListContainersRequest) (*ctrsvc.ListContainersResponse, error) {
	out := &ctrsvc.ListContainersResponse{}
	for _, c := range s.m.List() {
		out.Containers = append(out.Containers, protoconv.ToProto(c))
	}
	return out, nil
}

// ListStream sends every container once (upstream's is a stub that sends
// nothing).
func (s *containersServer) ListStream(_ *ctrsvc.ListContainersRequest, st ctrsvc.Containers_ListStreamServer) error {
	for _, c := range s.m.List() {
		if err := st.Send(&ctrsvc.ListContainerMessage{Container: protoconv.ToProto(c)}); err != nil {
			return err
		}
	}
	return nil
}

func (s *containersServer) Start(ctx context.Context, r *ctrsvc.StartContainerRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, grpcErr(s.m.Start(ctx, r.GetId()))
}

func (s *containersServer) Stop(ctx context.Context, r *ctrsvc.StopContainerRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, grpcErr(s.m.Stop(ctx, r.GetId(), protoconv.StopOptionsFromProto(r.GetStopOptions())))
}

func (s *containersServer) Update(ctx context.Context, r *ctrsvc.UpdateContainerRequest) (*emptypb.Empty, error) {
	var opts *model.UpdateOptions
	if u := r.GetUpdateOptions(); u != nil {
		opts = &model.UpdateOptions{RestartPolicy: protoconv.RestartPolicyFromProto(u.RestartPolicy), Resources: protoconv.ResourcesFromProto(u.Resources)}
	}
	return &emptypb.Empty{}, grpcErr(s.m.Update(ctx, r.GetId(), opts))
}

// Restart stops and starts the container (upstream does not implement it).
func (s *containersServer) Restart(ctx context.Context, r *ctrsvc.RestartContainerRequest) (*emptypb.Empty, error) {
	c, err := s.m.Get(r.GetId())
	if err != nil {
		return nil, grpcErr(err)
	}
	if c.State.Status == model.Running || c.State.Status == model.Paused {
		if err := s.m.Stop(ctx, r.GetId(), &model.StopOptions{Force: true}); err != nil {
			return nil, grpcErr(err)
		}
	}
	return &emptypb.Empty{}, grpcErr(s.m.Start(ctx, r.GetId()))
}

func (s *containersServer) Pause(ctx context.Context, r *ctrsvc.PauseContainerRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, grpcErr(s.m.Pause(ctx, r.GetId()))
}

func (s *containersServer) Unpause(ctx context.Context, r *ctrsvc.UnpauseContainerRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, grpcErr(s.m.Unpause(ctx, r.GetId()))
}

func (s *containersServer) Rename(ctx context.Context, r *ctrsvc.RenameContainerRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, grpcErr(s.m.Rename(ctx, r.GetId(), r.GetName()))
}

func (s *containersServer) Remove(ctx context.Context, r *ctrsvc.RemoveContainerRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, grpcErr(s.m.Remove(ctx, r.GetId(), r.GetForce(), protoconv.StopOptionsFromProto(r.GetStopOptions())))
}

func (s *containersServer) Logs(r *ctrsvc.GetLogsRequest, st ctrsvc.Containers_LogsServer) error {
	c, err := s.m.Get(r.GetId())
	if err != nil {
		return grpcErr(err)
	}
	if c.State.Status == model.Created {
		return grpcErr(model.Errorf(model.ErrState, "there are no logs for container with status \"Created\""))
	}
	if c.HostConfig.LogConfig.DriverConfig.Type == model.LogDriverNone {
		return grpcErr(model.Errorf(model.ErrState, "there are not any logs for container %s with log type none", c.ID))
	}
	err = logdriver.Tail(s.m.LogPath(c), int(r.GetTail()), func(line string) error {
		return st.Send(&ctrsvc.GetLogsResponse{Log: line})
	})
	return grpcErr(err)
}

// Attach streams the container's output (stdout and stderr merged, from the
// json-file log) until it stops running. Stdin is not forwarded: the
// containerd shim feeds the output to the log driver directly, which is
// what keeps containers alive across daemon restarts.
func (s *containersServer) Attach(st ctrsvc.Containers_AttachServer) error {
	first, err := st.Recv()
	if err != nil {
		return err
	}
	id := first.GetId()
	c, err := s.m.Get(id)
	if err != nil {
		return grpcErr(err)
	}
	if sess, err := s.m.Attach(id); err == nil {
		return attachInteractive(st, sess, first)
	} else if !errors.Is(err, mgr.ErrNotInteractive) {
		return grpcErr(err)
	}
	if c.HostConfig.LogConfig.DriverConfig.Type == model.LogDriverNone {
		return grpcErr(model.Errorf(model.ErrState, "cannot attach to container %s with log type none", id))
	}
	// Not interactive: the output comes from the log file; client messages
	// are drained so the stream stays open.
	go func() {
		for {
			if _, err := st.Recv(); err != nil {
				return
			}
		}
	}()
	path := s.m.LogPath(c)
	var off int64
	if fi, err := os.Stat(path); err == nil {
		off = fi.Size()
	}
	attached(st)
	began := time.Now()
	startedAt := c.State.StartedAt
	seenRun := c.State.Status == model.Running || c.State.Status == model.Paused
	poll := func() bool {
		select {
		case <-st.Context().Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
		cur, err := s.m.Get(id)
		if err != nil {
			return false
		}
		switch cur.State.Status {
		case model.Running, model.Paused:
			seenRun = true
			return true
		}
		if !seenRun && cur.State.StartedAt == startedAt && time.Since(began) < 30*time.Second {
			return true // not started yet
		}
		return false
	}
	emit := func(b []byte) error {
		return st.Send(&ctrsvc.AttachContainerResponse{Id: id, ReadData: b})
	}
	off, err = logdriver.Follow(path, off, emit, poll)
	if err != nil {
		return grpcErr(err)
	}
	// One last read for output written just before the exit.
	if _, err := logdriver.Follow(path, off, emit, func() bool { return false }); err != nil {
		return grpcErr(err)
	}
	return st.Send(&ctrsvc.AttachContainerResponse{Id: id})
}

// attachInteractive connects an interactive container's streams: output
// as read_data, data_to_write to its stdin, finish_write closes stdin. An
// empty read_data marks the end, when the run ends.
func attachInteractive(st ctrsvc.Containers_AttachServer, sess *mgr.Session, first *ctrsvc.AttachContainerRequest) error {
	defer sess.Detach()
	attached(st)
	id := first.GetId()
	write := func(r *ctrsvc.AttachContainerRequest) bool {
		if len(r.GetDataToWrite()) > 0 && first.GetStdIn() {
			if _, err := sess.Write(r.GetDataToWrite()); err != nil {
				return false
			}
		}
		if r.GetFinishWrite() {
			_ = sess.CloseStdin(st.Context())
			return false
		}
		return true
	}
	// Owned by the attach: ends with the client's stream.
	go func() {
		if !write(first) {
			return
		}
		for {
			r, err := st.Recv()
			if err != nil || !write(r) {
				return
			}
		}
	}()
	for {
		select {
		case <-st.Context().Done():
			return nil
		case b, ok := <-sess.Output:
			if !ok {
				return st.Send(&ctrsvc.AttachContainerResponse{Id: id})
			}
			if err := st.Send(&ctrsvc.AttachContainerResponse{Id: id, ReadData: b}); err != nil {
				return err
			}
		}
	}
}

// attached tells the client (in the response headers) that the attach is
// in place, so it can start the container without losing output. Upstream
// clients ignore it.
func attached(st ctrsvc.Containers_AttachServer) {
	_ = st.SendHeader(metadata.Pairs("kanto-attached", "1"))
}

type sysinfoServer struct {
	syssvc.UnimplementedSystemInfoServer
}

func (sysinfoServer) ProjectInfo(context.Context, *emptypb.Empty) (*syssvc.ProjectInfoResponse, error) {
	return &syssvc.ProjectInfoResponse{ProjectInfo: &systypes.ProjectInfo{
		ProjectVersion: Version, BuildTime: BuildTime, ApiVersion: APIVersion, GitCommit: GitCommit,
	}}, nil
}

type imagesServer struct {
	imgsvc.UnimplementedImagesServer
	m  *mgr.Manager
	rt *ctrd.Client
}

func (s *imagesServer) Pull(r *imgsvc.PullRequest, st imgsvc.Images_PullServer) error {
	if strings.TrimSpace(r.GetName()) == "" {
		return grpcErr(model.Errorf(model.ErrInvalid, "the containers image configuration is invalid"))
	}
	_, err := s.rt.EnsureImage(st.Context(), r.GetName(), func(line string) {
		_ = st.Send(&imgsvc.PullProgress{Line: line})
	})
	return grpcErr(err)
}

func (s *imagesServer) Import(ctx context.Context, r *imgsvc.ImportRequest) (*imgsvc.ImportResponse, error) {
	f, err := os.Open(r.GetPath())
	if err != nil {
		return nil, grpcErr(err)
	}
	defer f.Close()
	names, err := s.rt.Import(ctx, f)
	if err != nil {
		return nil, grpcErr(err)
	}
	return &imgsvc.ImportResponse{Names: names}, nil
}

func (s *imagesServer) Prune(ctx context.Context, _ *imgsvc.PruneRequest) (*imgsvc.PruneResponse, error) {
	removed, err := s.rt.Prune(ctx, s.m.ImagesInUse())
	return &imgsvc.PruneResponse{Removed: removed}, grpcErr(err)
}

func (s *imagesServer) List(ctx context.Context, _ *imgsvc.ListImagesRequest) (*imgsvc.ListImagesResponse, error) {
	names, err := s.rt.ImageNames(ctx)
	return &imgsvc.ListImagesResponse{Names: names}, grpcErr(err)
}

func newGRPCServer(m *mgr.Manager, rt *ctrd.Client) *grpc.Server {
	s := grpc.NewServer()
	ctrsvc.RegisterContainersServer(s, &containersServer{m: m})
	syssvc.RegisterSystemInfoServer(s, sysinfoServer{})
	imgsvc.RegisterImagesServer(s, &imagesServer{m: m, rt: rt})
	return s
}
