// Package store opens a service's bbolt database with a versioned schema.
//
// Every database has this layout:
//
//	meta/                       bucket kept by this package
//	  schema   -> uint64 (big endian), the number of migrations applied
//	  service  -> the owning service's name
//	v1/                         the root bucket of the service's data
//	  ...                       drawn by each service in its own package doc
//
// A service passes its ordered migrations; Open applies the ones not yet
// applied, each in its own transaction together with the new schema number,
// so a power loss leaves the database at one schema or the next, never
// between. A database written by a newer binary (more migrations than this
// one knows) is refused with ErrSchemaTooNew rather than misread.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Root is the name of the root bucket services keep their data under.
var Root = []byte("v1")

var (
	metaBucket = []byte("meta")
	schemaKey  = []byte("schema")
	serviceKey = []byte("service")
)

// Sentinel categories.
var (
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
	ErrWrongService = errors.New("database belongs to another service")
	ErrNotFound     = errors.New("not found")
)

// Migration moves the schema one step forward. It runs inside a write
// transaction; the root bucket exists when it runs.
type Migration struct {
	Name string
	Up   func(tx *bolt.Tx) error
}

// DB is an open service database.
type DB struct {
	*bolt.DB
}

// Open opens (creating if needed) the database at path for service and
// applies migrations. The parent directory is created.
func Open(path, service string, migrations []Migration) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db := &DB{DB: b}
	if err := db.migrate(service, migrations); err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

// Schema returns the number of migrations applied.
func (db *DB) Schema() (uint64, error) {
	var v uint64
	err := db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(metaBucket); m != nil {
			if raw := m.Get(schemaKey); len(raw) == 8 {
				v = binary.BigEndian.Uint64(raw)
			}
		}
		return nil
	})
	return v, err
}

func (db *DB) migrate(service string, migrations []Migration) error {
	err := db.Update(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		if owner := m.Get(serviceKey); owner != nil && string(owner) != service {
			return fmt.Errorf("%q, not %q: %w", owner, service, ErrWrongService)
		}
		if err := m.Put(serviceKey, []byte(service)); err != nil {
			return err
		}
		_, err = tx.CreateBucketIfNotExists(Root)
		return err
	})
	if err != nil {
		return err
	}
	have, err := db.Schema()
	if err != nil {
		return err
	}
	if have > uint64(len(migrations)) {
		return fmt.Errorf("schema %d, binary knows %d: %w", have, len(migrations), ErrSchemaTooNew)
	}
	for i := have; i < uint64(len(migrations)); i++ {
		mig := migrations[i]
		err := db.Update(func(tx *bolt.Tx) error {
			if err := mig.Up(tx); err != nil {
				return err
			}
			return tx.Bucket(metaBucket).Put(schemaKey, binary.BigEndian.AppendUint64(nil, i+1))
		})
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", i+1, mig.Name, err)
		}
	}
	return nil
}

// ViewRoot runs fn with the root bucket in a read transaction.
func (db *DB) ViewRoot(fn func(root *bolt.Bucket) error) error {
	return db.View(func(tx *bolt.Tx) error { return fn(tx.Bucket(Root)) })
}

// UpdateRoot runs fn with the root bucket in a write transaction.
func (db *DB) UpdateRoot(fn func(root *bolt.Bucket) error) error {
	return db.Update(func(tx *bolt.Tx) error { return fn(tx.Bucket(Root)) })
}
