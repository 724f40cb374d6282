package ota

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestMigration1 creates v1 with its history bucket on an empty database.
func TestMigration1(t *testing.T) {
	d, err := openDB(filepath.Join(t.TempDir(), "ota.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	var v uint64
	d.with(func() (err error) { v, err = d.schema(); return err })
	if v != uint64(len(migrations)) {
		t.Fatalf("schema %d", v)
	}
	err = d.with(func() error {
		return d.b.View(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketRoot) == nil || tx.Bucket(bucketRoot).Bucket(bucketHistory) == nil {
				return errors.New("v1/history missing")
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.load()
	if err != nil || r.State != StateIdle {
		t.Fatalf("empty database: %+v, %v", r, err)
	}
	if err := d.store(Record{State: StateDownloading, Transaction: "t"}, Transition{Transaction: "t", From: StateIdle, To: StateDownloading}); err != nil {
		t.Fatal(err)
	}
	h, err := d.history("t")
	if err != nil || len(h) != 1 || h[0].To != StateDownloading {
		t.Fatalf("history %+v, %v", h, err)
	}
}

func TestSchemaTooNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ota.db")
	d, err := openDB(path)
	if err != nil {
		t.Fatal(err)
	}
	d.with(func() error {
		return d.b.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keySchema, binary.BigEndian.AppendUint64(nil, 99))
		})
	})
	d.close()
	if _, err := openDB(path); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("got %v", err)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	d, err := openDB(filepath.Join(t.TempDir(), "ota.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	for range 250 {
		if err := d.store(Record{State: StateIdle}, Transition{To: StateIdle}); err != nil {
			t.Fatal(err)
		}
	}
	h, _ := d.history("")
	if len(h) != 200 {
		t.Fatalf("%d transitions kept", len(h))
	}
}

// TestSharedByProcesses: the database is not held open between operations,
// so the CLI can read it while the agent daemon runs.
func TestSharedByProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ota.db")
	a, err := openDB(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := openDB(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.store(Record{State: StateInstalled, Transaction: "x"}, Transition{Transaction: "x", To: StateInstalled}); err != nil {
		t.Fatal(err)
	}
	r, err := b.load()
	if err != nil || r.State != StateInstalled {
		t.Fatalf("%+v %v", r, err)
	}
}

// TestOpLockAcrossProcesses: a second holder (another process's open file
// description) gets ErrBusy instead of waiting.
func TestOpLockAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ota.db.lock")
	release, err := flockNB(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := flockNB(path); !errors.Is(err, ErrBusy) {
		t.Fatalf("second lock: %v", err)
	}
	release()
	again, err := flockNB(path)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()
}
