package protoconv

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/services/containers/model"
)

func TestRoundTrip(t *testing.T) {
	data, err := os.ReadFile("../model/testdata/container-full.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := model.Decode("full", data)
	if err != nil {
		t.Fatal(err)
	}
	model.FillDefaults(c)
	got := FromProto(ToProto(c))
	// started_successfully_before is not on the wire.
	want := c.Clone()
	want.StartedSuccessfullyBefore = false
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("round trip (-got +want):\n%s", diff)
	}
	if p := ToProto(c); p.HostConfig.RestartPolicy.RetryTimeout != 30 || p.State.Status != "Running" {
		t.Errorf("wire forms: timeout %d status %q", p.HostConfig.RestartPolicy.RetryTimeout, p.State.Status)
	}
}
