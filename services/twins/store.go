package twins

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kantofw/kanto/services/internal/store"
)

// Schema (bbolt, root bucket v1 of package store):
//
//	v1/
//	  owner        -> the device id the twins belong to
//	  things/      <thingId> -> record as JSON: {"thing":{…},"revision":n,
//	                "timestamp":"…","dirty":n,"unsynced":{f:n},"deleted":{f:n}}
//	  tombstones/  <thingId> -> revision (decimal) of a local delete the
//	                cloud has not confirmed
//
// One thing is one key, so every command is one transaction: a power loss
// leaves a thing before or after a command, never between.
var (
	thingsBucket = []byte("things")
	tombsBucket  = []byte("tombstones")
	ownerKey     = []byte("owner")
)

var migrations = []store.Migration{
	{Name: "things and tombstones buckets", Up: func(tx *bolt.Tx) error {
		root := tx.Bucket(store.Root)
		if _, err := root.CreateBucketIfNotExists(thingsBucket); err != nil {
			return err
		}
		_, err := root.CreateBucketIfNotExists(tombsBucket)
		return err
	}},
}

// ErrStore marks a storage failure (the "unknown" Ditto error).
var ErrStore = errors.New("thing storage")

// thingStore keeps the local twins.
type thingStore struct {
	db *store.DB
}

// openStore opens the twins database for device. A database owned by
// another device is kept aside as <path>.<old owner> (as upstream) and a
// fresh one is created.
func openStore(path, device string, now func() time.Time) (*thingStore, error) {
	db, err := store.Open(path, "local-digital-twins", migrations)
	if err != nil {
		return nil, err
	}
	var owner string
	_ = db.ViewRoot(func(root *bolt.Bucket) error { owner = string(root.Get(ownerKey)); return nil })
	if owner != "" && owner != device {
		db.Close()
		backup := path + "." + strings.ReplaceAll(owner, ":", "_")
		if err := os.Rename(path, backup); err != nil {
			backup = path + "." + strconv.FormatInt(now().Unix(), 10)
			if err := os.Rename(path, backup); err != nil {
				return nil, fmt.Errorf("%w: keep the database of %s aside: %v", ErrStore, owner, err)
			}
		}
		if db, err = store.Open(path, "local-digital-twins", migrations); err != nil {
			return nil, err
		}
	}
	if owner != device {
		if err := db.UpdateRoot(func(root *bolt.Bucket) error { return root.Put(ownerKey, []byte(device)) }); err != nil {
			db.Close()
			return nil, err
		}
	}
	return &thingStore{db: db}, nil
}

func (s *thingStore) close() error { return s.db.Close() }

func getRecord(root *bolt.Bucket, id string) (*record, error) {
	v := root.Bucket(thingsBucket).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("%w: thing %s: %v", ErrStore, id, err)
	}
	if r.Thing == nil {
		r.Thing = map[string]any{"thingId": id}
	}
	return &r, nil
}

// get returns a thing's record, nil when it does not exist.
func (s *thingStore) get(id string) (*record, error) {
	var r *record
	err := s.db.ViewRoot(func(root *bolt.Bucket) error {
		var err error
		r, err = getRecord(root, id)
		return err
	})
	return r, err
}

// update runs fn on a thing in one write transaction. fn returns the new
// record, or nil to delete the thing (tombstone set when tomb is true).
func (s *thingStore) update(id string, fn func(cur *record) (next *record, remove bool, err error)) error {
	return s.db.UpdateRoot(func(root *bolt.Bucket) error {
		cur, err := getRecord(root, id)
		if err != nil {
			return err
		}
		next, remove, err := fn(cur)
		if err != nil {
			return err
		}
		things, tombs := root.Bucket(thingsBucket), root.Bucket(tombsBucket)
		if remove {
			if err := things.Delete([]byte(id)); err != nil {
				return err
			}
			rev := int64(0)
			if cur != nil {
				rev = cur.Revision
			}
			return tombs.Put([]byte(id), []byte(strconv.FormatInt(rev, 10)))
		}
		if next == nil {
			return nil
		}
		data, err := json.Marshal(next)
		if err != nil {
			return err
		}
		if err := things.Put([]byte(id), data); err != nil {
			return err
		}
		return tombs.Delete([]byte(id))
	})
}

// ids lists the stored things.
func (s *thingStore) ids() ([]string, error) {
	var out []string
	err := s.db.ViewRoot(func(root *bolt.Bucket) error {
		return root.Bucket(thingsBucket).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// tombstones lists things deleted locally and not yet deleted in the cloud.
func (s *thingStore) tombstones() ([]string, error) {
	var out []string
	err := s.db.ViewRoot(func(root *bolt.Bucket) error {
		return root.Bucket(tombsBucket).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

func (s *thingStore) clearTombstone(id string) error {
	return s.db.UpdateRoot(func(root *bolt.Bucket) error { return root.Bucket(tombsBucket).Delete([]byte(id)) })
}

// synced records that the cloud has the thing as of revision rev: the
// given features (all when thing is true) lose their unsynchronized marks
// unless they changed again after rev; deletions up to rev are confirmed.
func (s *thingStore) synced(id string, rev int64, thing bool, features ...string) error {
	return s.update(id, func(cur *record) (*record, bool, error) {
		if cur == nil {
			return nil, false, nil
		}
		if thing && cur.Dirty != 0 && cur.Dirty <= rev {
			cur.Dirty = 0
		}
		clear := func(f string) {
			if r, ok := cur.Unsynced[f]; ok && r <= rev {
				delete(cur.Unsynced, f)
			}
		}
		if thing {
			for f := range cur.Unsynced {
				clear(f)
			}
		}
		for _, f := range features {
			clear(f)
		}
		return cur, false, nil
	})
}

// deletionsSynced confirms the removal of features up to rev.
func (s *thingStore) deletionsSynced(id string, rev int64, features []string) error {
	return s.update(id, func(cur *record) (*record, bool, error) {
		if cur == nil {
			return nil, false, nil
		}
		for _, f := range features {
			if r, ok := cur.Deleted[f]; ok && r <= rev {
				delete(cur.Deleted, f)
			}
		}
		return cur, false, nil
	})
}
