// Package buffer is the connectors' disk-persisted, bounded FIFO of
// messages on their way to the cloud. It survives a killed process and a
// power loss (every Put is fsynced before it returns), keeps arrival order,
// and when full applies an explicit overflow policy, counting what it drops.
//
// Schema (bbolt, root bucket v1 of package store):
//
//	v1/
//	  queue/  <seq uint64 BE> -> entry (see encode)
//	  stats/  "dropped" -> uint64 BE, messages dropped by the overflow policy
//	                    "poisoned" -> uint64 BE, messages set aside as undeliverable
//
// Sequence numbers come from the queue bucket's NextSequence, so they only
// grow, even across restarts.
package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kantofw/kanto/services/internal/store"
)

// Policy says what Put does when the buffer is full.
type Policy int

const (
	// DropOldest evicts the oldest messages to make room (the default: fresh
	// telemetry is worth more than stale).
	DropOldest Policy = iota
	// RejectNew refuses the new message with ErrFull.
	RejectNew
)

// ParsePolicy maps a config string.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "", "drop-oldest":
		return DropOldest, nil
	case "reject-new":
		return RejectNew, nil
	}
	return 0, fmt.Errorf("overflow policy %q: want drop-oldest or reject-new", s)
}

// Errors.
var (
	ErrFull     = errors.New("buffer full")
	ErrTooLarge = errors.New("message larger than the whole buffer")
)

// Entry is one buffered message.
type Entry struct {
	Seq      uint64
	Topic    string // the local topic it arrived on
	QoS      byte
	Received time.Time
	Payload  []byte
}

func (e *Entry) size() int64 { return int64(len(e.Topic) + len(e.Payload) + entryOverhead) }

const entryOverhead = 8 + 2 + 1 + 8 // seq key, topic length, qos, time

var (
	queueBucket = []byte("queue")
	statsBucket = []byte("stats")
	droppedKey  = []byte("dropped")
	poisonedKey = []byte("poisoned")
)

var migrations = []store.Migration{
	{Name: "queue and stats buckets", Up: func(tx *bolt.Tx) error {
		root := tx.Bucket(store.Root)
		if _, err := root.CreateBucketIfNotExists(queueBucket); err != nil {
			return err
		}
		_, err := root.CreateBucketIfNotExists(statsBucket)
		return err
	}},
}

// Buffer is a persistent FIFO. It is safe for concurrent use.
type Buffer struct {
	db       *store.DB
	maxBytes int64
	policy   Policy

	mu       sync.Mutex
	bytes    int64
	count    int
	dropped  uint64
	poisoned uint64
	notify   chan struct{}
}

// Open opens or creates the buffer file at path.
func Open(path string, maxBytes int64, policy Policy) (*Buffer, error) {
	db, err := store.Open(path, "buffer", migrations)
	if err != nil {
		return nil, err
	}
	b := &Buffer{db: db, maxBytes: maxBytes, policy: policy, notify: make(chan struct{}, 1)}
	err = db.ViewRoot(func(root *bolt.Bucket) error {
		st := root.Bucket(statsBucket)
		b.dropped = getU64(st, droppedKey)
		b.poisoned = getU64(st, poisonedKey)
		return root.Bucket(queueBucket).ForEach(func(k, v []byte) error {
			b.count++
			b.bytes += int64(len(v) + 8)
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return b, nil
}

// Close closes the file.
func (b *Buffer) Close() error { return b.db.Close() }

// Notify yields after a Put (coalesced), so a sender can wait for work.
func (b *Buffer) Notify() <-chan struct{} { return b.notify }

// Stats is a snapshot of the buffer.
type Stats struct {
	Messages int
	Bytes    int64
	Dropped  uint64 // evicted or refused by the overflow policy, ever
	Poisoned uint64 // set aside as undeliverable, ever
}

// Stats returns counts.
func (b *Buffer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{Messages: b.count, Bytes: b.bytes, Dropped: b.dropped, Poisoned: b.poisoned}
}

// Put appends entries in one fsynced transaction. Seq and zero Received
// times are filled in. With DropOldest it evicts from the head to make
// room; with RejectNew the whole batch is refused with ErrFull if it does
// not fit. It returns how many older messages were evicted.
func (b *Buffer) Put(entries ...*Entry) (evicted int, err error) {
	var need int64
	for _, e := range entries {
		if e.size() > b.maxBytes {
			return 0, fmt.Errorf("%d bytes on %s: %w", e.size(), e.Topic, ErrTooLarge)
		}
		need += e.size()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bytes+need > b.maxBytes && b.policy == RejectNew {
		b.dropped += uint64(len(entries))
		_ = b.db.UpdateRoot(func(root *bolt.Bucket) error {
			return putU64(root.Bucket(statsBucket), droppedKey, b.dropped)
		})
		return 0, ErrFull
	}
	var freed int64
	err = b.db.UpdateRoot(func(root *bolt.Bucket) error {
		q := root.Bucket(queueBucket)
		c := q.Cursor()
		for k, v := c.First(); k != nil && b.bytes-freed+need > b.maxBytes; k, v = c.Next() {
			freed += int64(len(v) + 8)
			evicted++
			if err := c.Delete(); err != nil {
				return err
			}
		}
		now := time.Now()
		for _, e := range entries {
			seq, err := q.NextSequence()
			if err != nil {
				return err
			}
			e.Seq = seq
			if e.Received.IsZero() {
				e.Received = now
			}
			if err := q.Put(binary.BigEndian.AppendUint64(nil, seq), encode(e)); err != nil {
				return err
			}
		}
		if evicted > 0 {
			return putU64(root.Bucket(statsBucket), droppedKey, b.dropped+uint64(evicted))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("buffer put: %w", err)
	}
	b.bytes += need - freed
	b.count += len(entries) - evicted
	b.dropped += uint64(evicted)
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return evicted, nil
}

// Peek returns up to n entries with Seq > after, oldest first.
func (b *Buffer) Peek(after uint64, n int) ([]*Entry, error) {
	var out []*Entry
	err := b.db.ViewRoot(func(root *bolt.Bucket) error {
		c := root.Bucket(queueBucket).Cursor()
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, after+1)); k != nil && len(out) < n; k, v = c.Next() {
			e, err := decode(v)
			if err != nil {
				return fmt.Errorf("entry %x: %w", k, err)
			}
			e.Seq = binary.BigEndian.Uint64(k)
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Remove deletes the entries with the given sequence numbers (delivered,
// or set aside as poison when poison is true).
func (b *Buffer) Remove(poison bool, seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var freed int64
	var n int
	err := b.db.UpdateRoot(func(root *bolt.Bucket) error {
		q := root.Bucket(queueBucket)
		for _, s := range seqs {
			k := binary.BigEndian.AppendUint64(nil, s)
			v := q.Get(k)
			if v == nil {
				continue // already evicted by the overflow policy
			}
			freed += int64(len(v) + 8)
			n++
			if err := q.Delete(k); err != nil {
				return err
			}
		}
		if poison {
			return putU64(root.Bucket(statsBucket), poisonedKey, b.poisoned+uint64(n))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("buffer remove: %w", err)
	}
	b.bytes -= freed
	b.count -= n
	if poison {
		b.poisoned += uint64(n)
	}
	return nil
}

// encode lays an entry out as: topic length (2), topic, qos (1),
// received unix nanos (8), payload.
func encode(e *Entry) []byte {
	buf := make([]byte, 0, 2+len(e.Topic)+1+8+len(e.Payload))
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(e.Topic)))
	buf = append(buf, e.Topic...)
	buf = append(buf, e.QoS)
	buf = binary.BigEndian.AppendUint64(buf, uint64(e.Received.UnixNano()))
	return append(buf, e.Payload...)
}

var errCorrupt = errors.New("corrupt buffer entry")

func decode(v []byte) (*Entry, error) {
	if len(v) < 2 {
		return nil, errCorrupt
	}
	tl := int(binary.BigEndian.Uint16(v))
	if len(v) < 2+tl+1+8 {
		return nil, errCorrupt
	}
	e := &Entry{Topic: string(v[2 : 2+tl]), QoS: v[2+tl]}
	e.Received = time.Unix(0, int64(binary.BigEndian.Uint64(v[3+tl:])))
	e.Payload = append([]byte(nil), v[11+tl:]...)
	return e, nil
}

func getU64(b *bolt.Bucket, k []byte) uint64 {
	if v := b.Get(k); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func putU64(b *bolt.Bucket, k []byte, v uint64) error {
	return b.Put(k, binary.BigEndian.AppendUint64(nil, v))
}
