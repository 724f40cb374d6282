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
	runCampaign := func(i int) {
		start := time.Now()
		if f := r.apply(fmt.Sprintf("bench-%d", i), comps); f.Status != updateapi.StatusCompleted {
			b.Fatalf("campaign: %s %q", f.Status, f.Message)
		}
		campaign += time.Since(start)
		if f := r.apply(fmt.Sprintf("bench-clear-%d", i), nil); f.Status != updateapi.StatusCompleted {
			b.Fatalf("clear: %s %q", f.Status, f.Message)
		}
	}
	runDirect := func(i int) {
		start := time.Now()
		for j := range comps {
			cr, err := api.Create(ctxT(b), &ctrsvc.CreateContainerRequest{Container: &pb.Container{Name: fmt.Sprintf("direct%d", j),
				Image: &pb.Image{Name: testImage}, Config: &pb.ContainerConfiguration{Cmd: []string{"sh", "-c", sleepCmd}}}})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := api.Start(ctxT(b), &ctrsvc.StartContainerRequest{Id: cr.Container.Id}); err != nil {
				b.Fatal(err)
			}
		}
		direct += time.Since(start)
		// Clear through the agent (stop, then remove): a forced Remove of
		// a just-started container hung in the daemon in one of our runs.
		if f := r.apply(fmt.Sprintf("bench-clear-direct-%d", i), nil); f.Status != updateapi.StatusCompleted || len(f.Actions) != len(comps) {
			b.Fatalf("clear direct: %s %q %d actions", f.Status, f.Message, len(f.Actions))
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate the order so neither side always follows a cleanup.
		if i%2 == 0 {
			runCampaign(i)
			runDirect(i)
		} else {
			runDirect(i)
			runCampaign(i)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(campaign.Milliseconds())/n, "campaign-ms/op")
	b.ReportMetric(float64(direct.Milliseconds())/n, "direct-ms/op")
	b.ReportMetric(float64(campaign)/float64(direct), "ratio")
}
