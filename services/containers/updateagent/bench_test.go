package updateagent_test

import (
	"fmt"
	"testing"
	"time"

	ctrsvc "github.com/kantofw/kanto/services/containers/api/services/containers"
	pb "github.com/kantofw/kanto/services/containers/api/types/containers"
	"github.com/kantofw/kanto/services/internal/updateapi"
)

// BenchmarkApplyTenContainers measures, in the same run against the same
// daemon, the time from publishing a desired state of 10 containers to the
// update manager's final feedback, and the same creates and starts done
// directly through the container API. It reports both and their ratio
// (campaign/direct). Removing the containers between rounds is not timed.
func BenchmarkApplyTenContainers(b *testing.B) {
	api := daemon(b)
	r := newRig(b, api)
	comps := make([]updateapi.Component, 10)
	for i := range comps {
		comps[i] = sleeper(fmt.Sprintf("bench%d", i))
	}
	var campaign, direct time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if f := r.apply(fmt.Sprintf("bench-%d", i), comps); f.Status != updateapi.StatusCompleted {
			b.Fatalf("campaign: %s %q", f.Status, f.Message)
		}
		campaign += time.Since(start)
		if f := r.apply(fmt.Sprintf("bench-clear-%d", i), nil); f.Status != updateapi.StatusCompleted {
			b.Fatalf("clear: %s %q", f.Status, f.Message)
		}

		start = time.Now()
		ids := make([]string, 0, len(comps))
		for j := range comps {
			cr, err := api.Create(ctxT(b), &ctrsvc.CreateContainerRequest{Container: &pb.Container{Name: fmt.Sprintf("direct%d", j),
				Image: &pb.Image{Name: testImage}, Config: &pb.ContainerConfiguration{Cmd: []string{"sh", "-c", sleepCmd}}}})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := api.Start(ctxT(b), &ctrsvc.StartContainerRequest{Id: cr.Container.Id}); err != nil {
				b.Fatal(err)
			}
			ids = append(ids, cr.Container.Id)
		}
		direct += time.Since(start)
		// Clear through the agent (stop, then remove): a forced Remove of
		// a just-started container hung in the daemon in our runs.
		if f := r.apply(fmt.Sprintf("bench-clear-direct-%d", i), nil); f.Status != updateapi.StatusCompleted || len(f.Actions) != len(ids) {
			b.Fatalf("clear direct: %s %q %d actions", f.Status, f.Message, len(f.Actions))
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(campaign.Milliseconds())/n, "campaign-ms/op")
	b.ReportMetric(float64(direct.Milliseconds())/n, "direct-ms/op")
	b.ReportMetric(float64(campaign)/float64(direct), "ratio")
}
