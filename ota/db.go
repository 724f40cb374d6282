package ota

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket and key names; the layout is drawn in the package doc.
var (
	bucketMeta    = []byte("meta")
	keySchema     = []byte("schema")
	bucketRoot    = []byte("v1")
	keyCurrent    = []byte("current")
	bucketHistory = []byte("history")
	keyLastBoot   = []byte("lastBoot")
)

// ErrSchemaTooNew: the database was written by a newer agent.
var ErrSchemaTooNew = errors.New("OTA database schema is newer than this agent")

// migration moves the schema one step forward inside a write transaction.
type migration struct {
	name string
	up   func(tx *bolt.Tx) error
}

// migrations is the ordered schema history; never reorder or remove.
var migrations = []migration{
	{"create v1 with current and history", func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketRoot)
		if err != nil {
			return err
		}
		_, err = root.CreateBucketIfNotExists(bucketHistory)
		return err
	}},
}

// db is the agent's bbolt store. It is opened for each operation and
// closed right after, so that several processes (the agent daemon and the
// kanto fw CLI) can share it; bbolt's file lock serializes them.
type db struct {
	path string
	b    *bolt.DB // set only inside with
}

func openDB(path string) (*db, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	d := &db{path: path}
	err := d.with(func() error { return d.migrate(migrations) })
	if err != nil {
		return nil, err
	}
	return d, nil
}

// with opens the database, runs fn and closes it.
func (d *db) with(fn func() error) error {
	b, err := bolt.Open(d.path, 0o600, &bolt.Options{Timeout: 30 * time.Second})
	if err != nil {
		return fmt.Errorf("open %s: %w", d.path, err)
	}
	d.b = b
	defer func() {
		d.b = nil
		b.Close()
	}()
	return fn()
}

func (d *db) close() error { return nil }

func (d *db) schema() (uint64, error) {
	var v uint64
	err := d.b.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			if raw := m.Get(keySchema); len(raw) == 8 {
				v = binary.BigEndian.Uint64(raw)
			}
		}
		return nil
	})
	return v, err
}

func (d *db) migrate(ms []migration) error {
	have, err := d.schema()
	if err != nil {
		return err
	}
	if have > uint64(len(ms)) {
		return fmt.Errorf("schema %d, agent knows %d: %w", have, len(ms), ErrSchemaTooNew)
	}
	for i := have; i < uint64(len(ms)); i++ {
		err := d.b.Update(func(tx *bolt.Tx) error {
			if err := ms[i].up(tx); err != nil {
				return err
			}
			m, err := tx.CreateBucketIfNotExists(bucketMeta)
			if err != nil {
				return err
			}
			return m.Put(keySchema, binary.BigEndian.AppendUint64(nil, i+1))
		})
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", i+1, ms[i].name, err)
		}
	}
	return nil
}

// load returns the current record (a zero Record in StateIdle if none).
func (d *db) load() (Record, error) {
	r := Record{State: StateIdle}
	err := d.with(func() error {
		return d.b.View(func(tx *bolt.Tx) error {
			raw := tx.Bucket(bucketRoot).Get(keyCurrent)
			if raw == nil {
				return nil
			}
			return json.Unmarshal(raw, &r)
		})
	})
	return r, err
}

// store writes r as the current record and appends the transition to the
// history, in one transaction.
func (d *db) store(r Record, t Transition) error {
	return d.with(func() error { return d.storeTx(r, t) })
}

func (d *db) storeTx(r Record, t Transition) error {
	return d.b.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketRoot)
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := root.Put(keyCurrent, data); err != nil {
			return err
		}
		h := root.Bucket(bucketHistory)
		seq, err := h.NextSequence()
		if err != nil {
			return err
		}
		tdata, err := json.Marshal(t)
		if err != nil {
			return err
		}
		if err := h.Put(binary.BigEndian.AppendUint64(nil, seq), tdata); err != nil {
			return err
		}
		// Keep the last 200 transitions.
		if seq > 200 {
			return h.Delete(binary.BigEndian.AppendUint64(nil, seq-200))
		}
		return nil
	})
}

// history returns the transitions of transaction tx (all if tx is "").
func (d *db) history(txID string) ([]Transition, error) {
	var out []Transition
	err := d.with(func() error {
		return d.b.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketRoot).Bucket(bucketHistory).ForEach(func(_, v []byte) error {
				var t Transition
				if err := json.Unmarshal(v, &t); err != nil {
					return err
				}
				if txID == "" || t.Transaction == txID {
					out = append(out, t)
				}
				return nil
			})
		})
	})
	return out, err
}

// markBoot records id as the last boot seen and reports whether it is new.
func (d *db) markBoot(id string) (bool, error) {
	first := false
	err := d.with(func() error {
		return d.b.Update(func(tx *bolt.Tx) error {
			root := tx.Bucket(bucketRoot)
			if string(root.Get(keyLastBoot)) == id {
				return nil
			}
			first = true
			return root.Put(keyLastBoot, []byte(id))
		})
	})
	return first, err
}
