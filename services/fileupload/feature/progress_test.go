package feature

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/services/fileupload/files"
	"github.com/kantofw/kanto/services/fileupload/providers"
)

// scripted reports the byte counts listed for a file, then succeeds.
type scripted map[string][]int64

func (s scripted) Upload(_ context.Context, f *files.File, p providers.Progress) error {
	for _, n := range s[f.Name()] {
		p(n)
	}
	return nil
}

func (r *recorder) statuses(t *testing.T, id string) []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Status
	for _, e := range r.envs {
		if !strings.HasSuffix(e.Path, "/lastUpload") {
			continue
		}
		var s Status
		if err := json.Unmarshal(e.Value, &s); err != nil {
			t.Fatalf("lastUpload %s: %v", e.Value, err)
		}
		if s.CorrelationID == id {
			out = append(out, s)
		}
	}
	return out
}

// waitStatuses waits until n statuses of id were published.
func (r *recorder) waitStatuses(t *testing.T, id string, n int) []Status {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ss := r.statuses(t, id); len(ss) >= n {
			return ss
		}
	}
	t.Fatalf("%d statuses of %s, want %d: %+v", len(r.statuses(t, id)), id, n, r.statuses(t, id))
	return nil
}

type progressPoint struct {
	State    State
	Progress int
	Bytes    int64
	Total    int64
}

func points(ss []Status) []progressPoint {
	var out []progressPoint
	for _, s := range ss {
		out = append(out, progressPoint{s.State, s.Progress, s.Bytes, s.Total})
	}
	return out
}

func writeSized(t *testing.T, dir string, sizes map[string]int) files.Policy {
	t.Helper()
	for name, n := range sizes {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return files.Policy{Glob: filepath.Join(dir, "*.log"), Mode: files.Strict}
}

// TestProgressByBytes: progress is the byte percentage over all files of
// the trigger, published only when the percentage changes, capped at 99
// until SUCCESS (100), with the bytes beyond upstream alongside.
func TestProgressByBytes(t *testing.T) {
	defer checkLeaks(t)()
	pol := writeSized(t, t.TempDir(), map[string]int{"a.log": 100, "b.log": 300})
	up := scripted{"a.log": {10, 10, 50, 100}, "b.log": {150, 300}}
	f, rec, stop := runFeature(t, Config{Policy: pol, StopTimeout: time.Second}, up)
	defer stop()
	if err := f.doTrigger(TriggerRequest{CorrelationID: "p"}); err != nil {
		t.Fatal(err.err)
	}
	// One file at a time, so the order of the callbacks is fixed.
	if err := f.start([]byte(`{"correlationId":"p#1"}`)); err != nil {
		t.Fatal(err.err)
	}
	rec.waitStatuses(t, "p", 4)
	if err := f.start([]byte(`{"correlationId":"p#2"}`)); err != nil {
		t.Fatal(err.err)
	}
	got := points(rec.waitStatuses(t, "p", 7))
	want := []progressPoint{
		{Uploading, 0, 0, 400},
		{Uploading, 2, 10, 400}, // 2.5 % rounds down; the repeated 10 adds nothing
		{Uploading, 12, 50, 400},
		{Uploading, 25, 100, 400}, // a.log done: still 25 %, no new status
		{Uploading, 62, 250, 400},
		{Uploading, 99, 400, 400}, // every byte confirmed, not yet SUCCESS
		{Success, 100, 400, 400},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}

// TestProgressByFileCount: when the sizes give no byte total (here every
// file is empty), progress counts finished files.
func TestProgressByFileCount(t *testing.T) {
	defer checkLeaks(t)()
	pol := writeSized(t, t.TempDir(), map[string]int{"a.log": 0, "b.log": 0, "c.log": 0})
	f, rec, stop := runFeature(t, Config{Policy: pol, StopTimeout: time.Second}, scripted{})
	defer stop()
	if err := f.doTrigger(TriggerRequest{CorrelationID: "n"}); err != nil {
		t.Fatal(err.err)
	}
	for i, n := range []int{2, 3, 4} {
		if err := f.start([]byte(`{"correlationId":"n#` + string(rune('1'+i)) + `"}`)); err != nil {
			t.Fatal(err.err)
		}
		rec.waitStatuses(t, "n", n)
	}
	var got []int
	for _, s := range rec.statuses(t, "n") {
		got = append(got, s.Progress)
	}
	if diff := cmp.Diff([]int{0, 33, 66, 100}, got); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
}
