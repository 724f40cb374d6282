package mgr

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kantofw/kanto/services/containers/model"
	"github.com/kantofw/kanto/services/internal/store"
)

// TestMigration1 checks the first migration creates the containers bucket
// and that records round-trip.
func TestMigration1(t *testing.T) {
	r, err := openRecords(filepath.Join(t.TempDir(), "cm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if v, _ := r.db.Schema(); v != 1 {
		t.Errorf("schema %d, want 1", v)
	}
	err = r.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(store.Root).Bucket(bucketContainers) == nil {
			t.Error("containers bucket missing")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &model.Container{ID: "a", Image: model.Image{Name: "img"}}
	model.FillDefaults(c)
	if err := r.put(c); err != nil {
		t.Fatal(err)
	}
	all, err := r.all()
	if err != nil || len(all) != 1 || all[0].Name != "a" {
		t.Fatalf("all() = %v, %v", all, err)
	}
	if err := r.delete("a"); err != nil {
		t.Fatal(err)
	}
	if all, _ := r.all(); len(all) != 0 {
		t.Errorf("after delete: %v", all)
	}
}

func TestShouldRestart(t *testing.T) {
	mk := func(typ string, max, count int, manual bool) *model.Container {
		return &model.Container{
			HostConfig:                &model.HostConfig{RestartPolicy: &model.RestartPolicy{Type: typ, MaximumRetryCount: max}},
			RestartCount:              count,
			ManuallyStopped:           manual,
			StartedSuccessfullyBefore: true,
		}
	}
	tests := []struct {
		name string
		c    *model.Container
		code int64
		want bool
	}{
		{"no", mk("no", 0, 0, false), 1, false},
		{"always exit 0", mk("always", 0, 0, false), 0, true},
		{"always manual", mk("always", 0, 0, true), 0, false},
		{"unless-stopped", mk("unless-stopped", 0, 5, false), 0, true},
		{"unless-stopped manual", mk("unless-stopped", 0, 0, true), 1, false},
		{"on-failure ok", mk("on-failure", 3, 0, false), 0, false},
		{"on-failure fail", mk("on-failure", 3, 2, false), 1, true},
		{"on-failure exhausted", mk("on-failure", 3, 3, false), 1, false},
		{"on-failure unlimited", mk("on-failure", 0, 100, false), 1, true},
	}
	for _, tt := range tests {
		if got := shouldRestart(tt.c, tt.code); got != tt.want {
			t.Errorf("%s: shouldRestart = %v, want %v", tt.name, got, tt.want)
		}
	}
	never := mk("always", 0, 0, false)
	never.StartedSuccessfullyBefore = false
	if shouldRestart(never, 1) {
		t.Error("restarted a container that never started")
	}
}

func TestNextDelay(t *testing.T) {
	rp := &model.RestartPolicy{Type: "on-failure", RetryTimeout: 300 * time.Millisecond}
	var d time.Duration
	var got []time.Duration
	for range 4 {
		d = nextDelay(d, rp, time.Second)
		got = append(got, d)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	if d := nextDelay(time.Minute, nil, 11*time.Second); d != 100*time.Millisecond {
		t.Errorf("after a stable run: %v", d)
	}
	if d := nextDelay(50*time.Second, nil, 0); d != time.Minute {
		t.Errorf("cap: %v", d)
	}
}
