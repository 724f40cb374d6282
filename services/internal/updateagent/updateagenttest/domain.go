// Package updateagenttest provides a scriptable in-process Domain for tests
// of the update manager and of the agent library: its components live in a
// map, each command can be made to fail or to wait for the test.
package updateagenttest

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/kantofw/kanto/services/internal/updateagent"
	"github.com/kantofw/kanto/services/internal/updateapi"
)

// Domain is a Domain whose installed components are a name→version map.
type Domain struct {
	Name string

	mu        sync.Mutex
	installed map[string]string
	fail      map[updateapi.CommandType]string
	gate      map[updateapi.CommandType]chan struct{}
	// Calls records every command executed, in order.
	calls []updateapi.CommandType
}

var _ updateagent.Domain = (*Domain)(nil)

// New returns a domain with the given components installed.
func New(name string, installed map[string]string) *Domain {
	if installed == nil {
		installed = map[string]string{}
	}
	return &Domain{Name: name, installed: installed, fail: map[updateapi.CommandType]string{}, gate: map[updateapi.CommandType]chan struct{}{}}
}

// FailOn makes cmd fail with msg.
func (d *Domain) FailOn(cmd updateapi.CommandType, msg string) {
	d.mu.Lock()
	d.fail[cmd] = msg
	d.mu.Unlock()
}

// Hold makes cmd wait until the returned func is called (or ctx ends).
func (d *Domain) Hold(cmd updateapi.CommandType) (release func()) {
	ch := make(chan struct{})
	d.mu.Lock()
	d.gate[cmd] = ch
	d.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// Calls returns the commands executed so far.
func (d *Domain) Calls() []updateapi.CommandType {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]updateapi.CommandType(nil), d.calls...)
}

// Installed returns a copy of the installed components.
func (d *Domain) Installed() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]string{}
	for k, v := range d.installed {
		out[k] = v
	}
	return out
}

// CurrentState lists the installed components under a domain root node.
func (d *Domain) CurrentState(context.Context) (updateapi.Inventory, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	root := d.Name + "-update-agent"
	inv := updateapi.Inventory{SoftwareNodes: []updateapi.SoftwareNode{{
		ID: root, Name: "test agent " + d.Name, Type: updateapi.TypeApplication,
		Parameters: []updateapi.KeyValue{{Key: "domain", Value: d.Name}},
	}}}
	names := make([]string, 0, len(d.installed))
	for n := range d.installed {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		id := d.Name + ":" + n
		inv.SoftwareNodes = append(inv.SoftwareNodes, updateapi.SoftwareNode{ID: id, Version: d.installed[n], Type: updateapi.TypeData})
		inv.Associations = append(inv.Associations, updateapi.Association{SourceID: root, TargetID: id})
	}
	return inv, nil
}

// Identify plans an update for every component whose version differs and a
// removal for every installed one not desired.
func (d *Domain) Identify(_ context.Context, op *updateagent.Operation) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if msg, ok := d.fail["IDENTIFY"]; ok {
		return fmt.Errorf("%s", msg)
	}
	want := map[string]bool{}
	for _, c := range op.Components() {
		want[c.ID] = true
		if v, ok := d.installed[c.ID]; ok && v == c.Version {
			continue
		}
		op.Actions = append(op.Actions, updateapi.Action{
			Component: updateapi.ComponentRef{ID: d.Name + ":" + c.ID, Version: c.Version},
			Status:    updateapi.ActionIdentified, Message: "install " + c.Version,
		})
	}
	names := make([]string, 0)
	for n := range d.installed {
		if !want[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		op.Actions = append(op.Actions, updateapi.Action{
			Component: updateapi.ComponentRef{ID: d.Name + ":" + n, Version: d.installed[n]},
			Status:    updateapi.ActionIdentified, Message: "remove",
		})
	}
	return nil
}

// Execute moves every action through the command's action statuses.
func (d *Domain) Execute(ctx context.Context, cmd updateapi.CommandType, op *updateagent.Operation) error {
	d.mu.Lock()
	d.calls = append(d.calls, cmd)
	gate := d.gate[cmd]
	msg, fail := d.fail[cmd]
	d.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail {
		for i := range op.Actions {
			op.Actions[i].Status, op.Actions[i].Message = failStatus(cmd), msg
		}
		return fmt.Errorf("%s", msg)
	}
	if cmd == updateapi.CommandActivate {
		d.mu.Lock()
		for _, a := range op.Actions {
			id := a.Component.ID[len(d.Name)+1:]
			if a.Message == "remove" {
				delete(d.installed, id)
			} else {
				d.installed[id] = a.Component.Version
			}
		}
		d.mu.Unlock()
	}
	if st, ok := okStatus(cmd); ok {
		for i := range op.Actions {
			op.Actions[i].Status, op.Actions[i].Progress = st, 100
		}
	}
	return nil
}

func okStatus(cmd updateapi.CommandType) (updateapi.ActionStatus, bool) {
	switch cmd {
	case updateapi.CommandDownload:
		return updateapi.ActionDownloadSuccess, true
	case updateapi.CommandUpdate:
		return updateapi.ActionUpdateSuccess, true
	case updateapi.CommandActivate:
		return updateapi.ActionActivationSuccess, true
	}
	return "", false
}

func failStatus(cmd updateapi.CommandType) updateapi.ActionStatus {
	switch cmd {
	case updateapi.CommandDownload:
		return updateapi.ActionDownloadFailure
	case updateapi.CommandActivate:
		return updateapi.ActionActivationFailure
	}
	return updateapi.ActionUpdateFailure
}
