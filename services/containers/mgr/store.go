package mgr

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/kantofw/kanto/services/containers/model"
	"github.com/kantofw/kanto/services/internal/store"
)

// Database schema (see services/internal/store for meta/ and the root):
//
//	v1/
//	  containers/
//	    <container id> -> model.Container as JSON (upstream's persisted form)
var bucketContainers = []byte("containers")

// migrations is the ordered schema history; one test per entry.
var migrations = []store.Migration{
	{Name: "create containers bucket", Up: func(tx *bolt.Tx) error {
		_, err := tx.Bucket(store.Root).CreateBucketIfNotExists(bucketContainers)
		return err
	}},
}

type records struct{ db *store.DB }

func openRecords(path string) (*records, error) {
	db, err := store.Open(path, "container-management", migrations)
	if err != nil {
		return nil, err
	}
	return &records{db: db}, nil
}

func (r *records) put(c *model.Container) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return r.db.UpdateRoot(func(root *bolt.Bucket) error {
		return root.Bucket(bucketContainers).Put([]byte(c.ID), b)
	})
}

func (r *records) delete(id string) error {
	return r.db.UpdateRoot(func(root *bolt.Bucket) error {
		return root.Bucket(bucketContainers).Delete([]byte(id))
	})
}

func (r *records) all() ([]*model.Container, error) {
	var out []*model.Container
	err := r.db.ViewRoot(func(root *bolt.Bucket) error {
		return root.Bucket(bucketContainers).ForEach(func(k, v []byte) error {
			c := new(model.Container)
			if err := json.Unmarshal(v, c); err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

func (r *records) close() error { return r.db.Close() }
