package buffer

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func open(t *testing.T, path string, max int64, p Policy) *Buffer {
	t.Helper()
	b, err := Open(path, max, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func msg(i int) *Entry {
	return &Entry{Topic: "t", QoS: 1, Payload: []byte(fmt.Sprintf("%04d", i))}
}

func payloads(t *testing.T, b *Buffer) []string {
	t.Helper()
	es, err := b.Peek(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, string(e.Payload))
	}
	return out
}

func TestOrderAndPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.db")
	b := open(t, path, 1<<20, DropOldest)
	for i := range 100 {
		if _, err := b.Put(msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	first, _ := b.Peek(0, 10)
	if err := b.Remove(false, first[0].Seq, first[1].Seq); err != nil {
		t.Fatal(err)
	}
	b.Close()

	b = open(t, path, 1<<20, DropOldest)
	defer b.Close()
	got := payloads(t, b)
	if len(got) != 98 || got[0] != "0002" || got[97] != "0099" {
		t.Fatalf("after reopen got %d messages from %v to %v", len(got), got[0], got[len(got)-1])
	}
	if st := b.Stats(); st.Messages != 98 || st.Dropped != 0 {
		t.Errorf("stats = %+v", st)
	}
	// Sequence numbers keep growing after a reopen.
	b.Put(msg(100))
	es, _ := b.Peek(0, 1000)
	if es[len(es)-1].Seq <= es[len(es)-2].Seq {
		t.Errorf("sequence went backwards: %d after %d", es[len(es)-1].Seq, es[len(es)-2].Seq)
	}
	// Peek after a sequence skips what is in flight.
	rest, _ := b.Peek(es[10].Seq, 1000)
	if len(rest) != len(es)-11 {
		t.Errorf("Peek(after) = %d entries, want %d", len(rest), len(es)-11)
	}
}

func TestDropOldestCountsAndKeepsNewest(t *testing.T) {
	e := msg(0)
	b := open(t, filepath.Join(t.TempDir(), "b.db"), 10*e.size(), DropOldest)
	defer b.Close()
	evicted := 0
	for i := range 25 {
		n, err := b.Put(msg(i))
		if err != nil {
			t.Fatal(err)
		}
		evicted += n
	}
	got := payloads(t, b)
	if len(got) != 10 || got[0] != "0015" || got[9] != "0024" {
		t.Fatalf("kept %v, want the newest 10", got)
	}
	if st := b.Stats(); st.Dropped != 15 || evicted != 15 {
		t.Errorf("dropped = %d (returned %d), want 15", st.Dropped, evicted)
	}
}

func TestRejectNew(t *testing.T) {
	e := msg(0)
	path := filepath.Join(t.TempDir(), "b.db")
	b := open(t, path, 3*e.size(), RejectNew)
	for i := range 3 {
		if _, err := b.Put(msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Put(msg(3)); !errors.Is(err, ErrFull) {
		t.Fatalf("4th put: err = %v, want ErrFull", err)
	}
	if _, err := b.Put(&Entry{Topic: "t", Payload: make([]byte, 1000)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge put: err = %v, want ErrTooLarge", err)
	}
	b.Close()
	b = open(t, path, 3*e.size(), RejectNew)
	defer b.Close()
	if st := b.Stats(); st.Dropped != 1 || st.Messages != 3 {
		t.Errorf("stats after reopen = %+v, want 1 dropped, 3 kept", st)
	}
}

func TestPoisonCounted(t *testing.T) {
	b := open(t, filepath.Join(t.TempDir(), "b.db"), 1<<20, DropOldest)
	defer b.Close()
	b.Put(msg(1), msg(2))
	es, _ := b.Peek(0, 1)
	if err := b.Remove(true, es[0].Seq); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Poisoned != 1 || st.Messages != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(&Entry{Topic: "event/T/D", QoS: 1, Received: time.Unix(1, 2), Payload: []byte(`{"a":1}`)}))
	f.Add([]byte{0, 5, 'a'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		e, err := decode(v)
		if err != nil {
			return
		}
		if got := encode(e); string(got) != string(v) {
			t.Fatalf("decode/encode changed %x to %x", v, got)
		}
	})
}

func BenchmarkPut(b *testing.B) {
	buf, err := Open(filepath.Join(b.TempDir(), "b.db"), 1<<30, DropOldest)
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	payload := make([]byte, 256)
	for _, batch := range []int{1, 20} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			es := make([]*Entry, batch)
			for i := 0; i < b.N; i++ {
				for j := range es {
					es[j] = &Entry{Topic: "telemetry", QoS: 1, Payload: payload}
				}
				if _, err := buf.Put(es...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
