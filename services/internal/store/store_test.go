package store

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestMigrationsApplyOnceInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.db")
	var ran []string
	migs := []Migration{
		{Name: "buckets", Up: func(tx *bolt.Tx) error {
			ran = append(ran, "buckets")
			_, err := tx.Bucket(Root).CreateBucket([]byte("things"))
			return err
		}},
		{Name: "seed", Up: func(tx *bolt.Tx) error {
			ran = append(ran, "seed")
			return tx.Bucket(Root).Bucket([]byte("things")).Put([]byte("a"), []byte("1"))
		}},
	}
	db, err := Open(path, "svc", migs[:1])
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(path, "svc", migs)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, want := len(ran), 2; got != want {
		t.Fatalf("migrations ran %v, want each once", ran)
	}
	if v, _ := db.Schema(); v != 2 {
		t.Errorf("schema = %d, want 2", v)
	}
	var got string
	db.ViewRoot(func(r *bolt.Bucket) error { got = string(r.Bucket([]byte("things")).Get([]byte("a"))); return nil })
	if got != "1" {
		t.Errorf("seeded value = %q, want 1", got)
	}
}

func TestRefusesNewerSchemaAndOtherService(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	noop := Migration{Name: "noop", Up: func(*bolt.Tx) error { return nil }}
	db, err := Open(path, "svc", []Migration{noop, noop})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, "svc", []Migration{noop}); !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("older binary: err = %v, want ErrSchemaTooNew", err)
	}
	if _, err := Open(path, "other", []Migration{noop, noop}); !errors.Is(err, ErrWrongService) {
		t.Errorf("other service: err = %v, want ErrWrongService", err)
	}
}

func TestFailedMigrationLeavesSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	boom := errors.New("boom")
	_, err := Open(path, "svc", []Migration{{Name: "bad", Up: func(tx *bolt.Tx) error {
		tx.Bucket(Root).Put([]byte("half"), []byte("x"))
		return boom
	}}})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	db, err := Open(path, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.Schema(); v != 0 {
		t.Errorf("schema = %d after failed migration, want 0", v)
	}
	db.ViewRoot(func(r *bolt.Bucket) error {
		if r.Get([]byte("half")) != nil {
			t.Error("failed migration's write persisted")
		}
		return nil
	})
}
