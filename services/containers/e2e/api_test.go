package e2e

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ctrsvc "github.com/kantofw/kanto/services/containers/api/services/containers"
	pb "github.com/kantofw/kanto/services/containers/api/types/containers"
	"github.com/kantofw/kanto/services/containers/cmtest"
)

// TestGRPCAPI drives the daemon through a client generated from our .proto
// files, checking upstream's wire behaviour (Get of an unknown id is an
// empty response, errors are code Unknown with the message).
func TestGRPCAPI(t *testing.T) {
	d := setup(t)
	cl, _ := client(t, d)
	c := ctx(t)
	r, err := cl.Create(c, &ctrsvc.CreateContainerRequest{Container: &pb.Container{
		Name:   "api",
		Image:  &pb.Image{Name: testImage},
		Config: &pb.ContainerConfiguration{Cmd: []string{"sh", "-c", "echo one; echo two; echo three; exec sleep 600"}},
		HostConfig: &pb.HostConfig{
			RestartPolicy: &pb.RestartPolicy{Type: "on-failure", MaximumRetryCount: 2, RetryTimeout: 5},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	id := r.Container.Id
	if r.Container.State.Status != "Created" || r.Container.HostConfig.RestartPolicy.RetryTimeout != 5 {
		t.Errorf("created: %+v", r.Container)
	}
	g, err := cl.Get(c, &ctrsvc.GetContainerRequest{Id: "nope"})
	if err != nil || g.Container != nil {
		t.Errorf("Get(unknown) = %v, %v; want empty response, no error", g, err)
	}
	if _, err := cl.Start(c, &ctrsvc.StartContainerRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	var lines []string
	cmtest.WaitFor(t, 30*time.Second, "three log lines", func() bool {
		lines = nil
		st, err := cl.Logs(c, &ctrsvc.GetLogsRequest{Id: id, Tail: 2})
		if err != nil {
			return false
		}
		for {
			m, err := st.Recv()
			if err != nil {
				break
			}
			lines = append(lines, m.Log)
		}
		return len(lines) == 2 && strings.Contains(lines[1], "three")
	})
	if !strings.Contains(lines[0], "two") {
		t.Errorf("tail 2: %q", lines)
	}
	ls, err := cl.ListStream(c, &ctrsvc.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, err := ls.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Errorf("ListStream sent %d containers, want 1", n)
	}
	_, err = cl.Remove(c, &ctrsvc.RemoveContainerRequest{Id: id})
	if s, _ := status.FromError(err); s.Code() != codes.Unknown || !strings.Contains(s.Message(), "must set the force flag to true") {
		t.Errorf("Remove(running) = %v", err)
	}
	_, err = cl.Start(c, &ctrsvc.StartContainerRequest{Id: "nope"})
	if s, _ := status.FromError(err); s.Message() != "no such container with id = nope exists" {
		t.Errorf("Start(unknown) = %v", err)
	}
	if _, err := cl.Stop(c, &ctrsvc.StopContainerRequest{Id: id, StopOptions: &pb.StopOptions{Timeout: 1, Force: true, Signal: "SIGINT"}}); err != nil {
		t.Fatal(err)
	}
	g, _ = cl.Get(c, &ctrsvc.GetContainerRequest{Id: id})
	if g.Container.State.Status != "Stopped" {
		t.Errorf("after stop: %v", g.Container.State)
	}
	if _, err := cl.Remove(c, &ctrsvc.RemoveContainerRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	l, _ := cl.List(c, &ctrsvc.ListContainersRequest{})
	if len(l.Containers) != 0 {
		t.Errorf("left: %v", l.Containers)
	}
}
