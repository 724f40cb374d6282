// Command cmbench measures container create+start latency through the
// daemon's gRPC API next to `ctr run -d` of the same image on the same
// containerd, and the daemon's idle RSS with 0 and 10 running containers.
// bench/containers.sh sets everything up and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	ctrsvc "github.com/kantofw/kanto/services/containers/api/services/containers"
	pb "github.com/kantofw/kanto/services/containers/api/types/containers"
)

func main() {
	sock := flag.String("socket", "", "daemon gRPC socket")
	ctrd := flag.String("containerd", "", "containerd socket")
	image := flag.String("image", "", "image reference (already present)")
	n := flag.Int("n", 30, "iterations")
	pid := flag.Int("pid", 0, "daemon pid (for RSS)")
	flag.Parse()
	conn, err := grpc.Dial("unix://"+*sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail(err)
	}
	cl := ctrsvc.NewContainersClient(conn)
	ctx := context.Background()
	cmd := []string{"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"}

	ours := func(mode string) []time.Duration {
		var ds []time.Duration
		for i := 0; i < *n; i++ {
			t0 := time.Now()
			r, err := cl.Create(ctx, &ctrsvc.CreateContainerRequest{Container: &pb.Container{
				Image: &pb.Image{Name: *image}, Config: &pb.ContainerConfiguration{Cmd: cmd},
				HostConfig: &pb.HostConfig{NetworkMode: mode, RestartPolicy: &pb.RestartPolicy{Type: "no"}},
			}})
			if err != nil {
				fail(err)
			}
			if _, err := cl.Start(ctx, &ctrsvc.StartContainerRequest{Id: r.Container.Id}); err != nil {
				fail(err)
			}
			ds = append(ds, time.Since(t0))
			if _, err := cl.Remove(ctx, &ctrsvc.RemoveContainerRequest{Id: r.Container.Id, Force: true, StopOptions: &pb.StopOptions{Signal: "SIGKILL", Force: true, Timeout: 5}}); err != nil {
				fail(err)
			}
		}
		return ds
	}
	ctrRun := func() []time.Duration {
		var ds []time.Duration
		for i := 0; i < *n; i++ {
			id := fmt.Sprintf("bench-ctr-%d", i)
			args := []string{"--address", *ctrd, "-n", "kanto-cm-bench", "run", "-d", *image, id}
			t0 := time.Now()
			if out, err := exec.Command("ctr", append(args, cmd...)...).CombinedOutput(); err != nil {
				fail(fmt.Errorf("ctr run: %v: %s", err, out))
			}
			ds = append(ds, time.Since(t0))
			base := []string{"--address", *ctrd, "-n", "kanto-cm-bench"}
			_ = exec.Command("ctr", append(base, "task", "kill", "-s", "SIGKILL", id)...).Run()
			time.Sleep(50 * time.Millisecond)
			_ = exec.Command("ctr", append(base, "task", "delete", "-f", id)...).Run()
			_ = exec.Command("ctr", append(base, "container", "delete", id)...).Run()
		}
		return ds
	}
	fresh := ""
	if *pid > 0 {
		fresh = rss(*pid)
	}
	host := ours("host")
	bridge := ours("bridge")
	floor := ctrRun()
	fmt.Printf("create+start latency over %d runs (p50 / p99):\n", *n)
	fmt.Printf("  kanto-cm API, host network:   %8s / %8s\n", pct(host, 50), pct(host, 99))
	fmt.Printf("  kanto-cm API, bridge (CNI):   %8s / %8s\n", pct(bridge, 50), pct(bridge, 99))
	fmt.Printf("  ctr run -d (floor):           %8s / %8s\n", pct(floor, 50), pct(floor, 99))
	fmt.Printf("  ratio p50 ours(host)/ctr:     %.2f\n", float64(pct(host, 50))/float64(pct(floor, 50)))
	fmt.Printf("  ratio p50 ours(bridge)/ctr:   %.2f\n", float64(pct(bridge, 50))/float64(pct(floor, 50)))

	if *pid > 0 {
		fmt.Printf("daemon RSS, fresh (0 ctrs):     %s\n", fresh)
		fmt.Printf("daemon RSS, 0 containers:       %s (after the latency runs)\n", rss(*pid))
		var ids []string
		for i := 0; i < 10; i++ {
			r, err := cl.Create(ctx, &ctrsvc.CreateContainerRequest{Container: &pb.Container{
				Image: &pb.Image{Name: *image}, Config: &pb.ContainerConfiguration{Cmd: cmd},
				HostConfig: &pb.HostConfig{RestartPolicy: &pb.RestartPolicy{Type: "no"}},
			}})
			if err != nil {
				fail(err)
			}
			if _, err := cl.Start(ctx, &ctrsvc.StartContainerRequest{Id: r.Container.Id}); err != nil {
				fail(err)
			}
			ids = append(ids, r.Container.Id)
		}
		time.Sleep(2 * time.Second)
		fmt.Printf("daemon RSS, 10 running:         %s\n", rss(*pid))
		for _, id := range ids {
			_, _ = cl.Remove(ctx, &ctrsvc.RemoveContainerRequest{Id: id, Force: true, StopOptions: &pb.StopOptions{Signal: "SIGKILL", Force: true, Timeout: 5}})
		}
	}
}

func pct(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i].Round(100 * time.Microsecond)
}

func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "?"
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "cmbench:", err)
	os.Exit(1)
}
