package twins

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/kantofw/kanto/services/internal/store"
)

// Migration 1 creates the things and tombstones buckets.
func TestMigration1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "things.db")
	db, err := store.Open(path, "local-digital-twins", migrations)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.Schema(); v != 1 {
		t.Errorf("schema %d, want 1", v)
	}
	err = db.ViewRoot(func(root *bolt.Bucket) error {
		for _, b := range [][]byte{thingsBucket, tombsBucket} {
			if root.Bucket(b) == nil {
				t.Errorf("bucket %s missing", b)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A database of another device is kept aside (upstream's rename) and a
// fresh one is used.
func TestStoreOwnerChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "things.db")
	s, err := openStore(path, "ns:old", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.update("ns:old", func(*record) (*record, bool, error) { return newThing("ns:old", time.Now()), false, nil }); err != nil {
		t.Fatal(err)
	}
	s.close()
	s, err = openStore(path, "ns:new", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if ids, _ := s.ids(); len(ids) != 0 {
		t.Errorf("new device sees things %v", ids)
	}
	if _, err := os.Stat(path + ".ns_old"); err != nil {
		t.Errorf("old database not kept aside: %v", err)
	}
}

// Sync marks clear only up to the revision the cloud confirmed, so a change
// made while a sync was in flight is not lost.
func TestSyncedKeepsNewerChanges(t *testing.T) {
	s, err := openStore(filepath.Join(t.TempDir(), "things.db"), "ns:dev", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	rec := newThing("ns:dev", time.Now())
	rec.Unsynced = map[string]int64{"a": 3, "b": 5}
	rec.Deleted = map[string]int64{"c": 2, "d": 6}
	rec.Dirty = 4
	_ = s.update("ns:dev", func(*record) (*record, bool, error) { return rec, false, nil })
	if err := s.synced("ns:dev", 4, true); err != nil {
		t.Fatal(err)
	}
	if err := s.deletionsSynced("ns:dev", 4, []string{"c", "d"}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.get("ns:dev")
	if diff := cmp.Diff(map[string]int64{"b": 5}, got.Unsynced); diff != "" {
		t.Errorf("unsynced -want +got:\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int64{"d": 6}, got.Deleted); diff != "" {
		t.Errorf("deleted -want +got:\n%s", diff)
	}
	if got.Dirty != 0 {
		t.Errorf("dirty %d", got.Dirty)
	}
}
