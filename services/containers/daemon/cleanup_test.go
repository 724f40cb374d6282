package daemon

import (
	"testing"

	"github.com/kantofw/kanto/services/containers/model"
)

func TestBridgeInUse(t *testing.T) {
	c := func(mode string, st model.State) *model.Container {
		return &model.Container{HostConfig: &model.HostConfig{NetworkMode: mode}, State: &st}
	}
	for _, tc := range []struct {
		name string
		cs   []*model.Container
		want bool
	}{
		{"none", nil, false},
		{"created only", []*model.Container{c(model.NetworkBridge, model.State{Status: model.Created})}, false},
		{"exited", []*model.Container{c(model.NetworkBridge, model.State{Exited: true})}, false},
		{"running on host network", []*model.Container{c(model.NetworkHost, model.State{Running: true})}, false},
		{"running bridged", []*model.Container{c(model.NetworkBridge, model.State{Running: true})}, true},
		{"paused bridged", []*model.Container{c(model.NetworkBridge, model.State{Paused: true})}, true},
		{"restarting bridged", []*model.Container{c(model.NetworkHost, model.State{Running: true}), c(model.NetworkBridge, model.State{Restarting: true})}, true},
		{"no state", []*model.Container{{HostConfig: &model.HostConfig{NetworkMode: model.NetworkBridge}}}, false},
	} {
		if got := bridgeInUse(tc.cs); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
