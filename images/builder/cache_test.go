package builder

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCacheHitMissAndPrune(t *testing.T) {
	c := &cache{dir: t.TempDir()}
	runs := 0
	make1 := func(dir string) error { runs++; return os.WriteFile(filepath.Join(dir, "out"), []byte("x"), 0o644) }
	d1, hit, err := c.get("step", newKey("step").str("in", "1"), make1)
	if err != nil || hit {
		t.Fatalf("first get: hit=%v err=%v", hit, err)
	}
	if _, hit, _ := c.get("step", newKey("step").str("in", "1"), make1); !hit || runs != 1 {
		t.Errorf("same inputs: hit=%v runs=%d, want a hit without running", hit, runs)
	}
	d2, _, _ := c.get("step", newKey("step").str("in", "2"), make1)
	if d1 == d2 || runs != 2 {
		t.Errorf("other inputs share %s (runs %d)", d2, runs)
	}
	// A failed step leaves no entry behind.
	if _, _, err := c.get("step", newKey("step").str("in", "3"), func(string) error { return errors.New("boom") }); err == nil {
		t.Error("failing make: no error")
	}
	if m, _ := filepath.Glob(filepath.Join(c.dir, "*")); len(m) != 2 {
		t.Errorf("entries after a failure: %v", m)
	}
	// Prune keeps recent entries (another build may use them) and removes
	// old unused ones.
	c.prune("step", d2)
	if _, err := os.Stat(d1); err != nil {
		t.Errorf("recent entry pruned: %v", err)
	}
	old := time.Now().Add(-2 * pruneAge)
	os.Chtimes(d1, old, old)
	c.prune("step", d2)
	if _, err := os.Stat(d1); !os.IsNotExist(err) {
		t.Errorf("old unused entry kept: %v", err)
	}
	if _, err := os.Stat(d2); err != nil {
		t.Errorf("kept entry removed: %v", err)
	}
}
