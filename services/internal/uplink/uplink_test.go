package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/services/internal/buffer"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// fakeCloud acknowledges publishes at once, or fails them when broken.
type fakeCloud struct {
	mu     sync.Mutex
	got    []string
	broken bool
}

func (f *fakeCloud) PublishAsync(m mqtt.Message) <-chan error {
	ch := make(chan error, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.broken {
		ch <- errors.New("connection lost")
		return ch
	}
	f.got = append(f.got, m.Topic+" "+string(m.Payload))
	ch <- nil
	return ch
}

func (f *fakeCloud) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func openBuffer(t *testing.T) *buffer.Buffer {
	t.Helper()
	b, err := buffer.Open(filepath.Join(t.TempDir(), "buf.db"), 1<<20, buffer.DropOldest)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// An entry may map to none, one or several cloud messages; all go out in
// order and every entry leaves the buffer once all its messages are in.
func TestSenderFansOutInOrder(t *testing.T) {
	buf := openBuffer(t)
	for i := range 5 {
		if _, err := buf.Put(&buffer.Entry{Topic: "t", Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	s := &Sender{Buf: buf, Log: slog.New(slog.DiscardHandler), Window: 2, Route: func(e *buffer.Entry) ([]mqtt.Message, error) {
		switch string(e.Payload) {
		case "1":
			return nil, nil // filtered
		case "2":
			return []mqtt.Message{{Topic: "a", Payload: e.Payload}, {Topic: "b", Payload: e.Payload}}, nil
		case "3":
			return nil, fmt.Errorf("%w: test", ErrRoute)
		}
		return []mqtt.Message{{Topic: "x", Payload: e.Payload}}, nil
	}}
	cloud := &fakeCloud{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Send(ctx, cloud, nil) }()
	deadline := time.Now().Add(10 * time.Second)
	for buf.Stats().Messages > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if diff := cmp.Diff([]string{"x 0", "a 2", "b 2", "x 4"}, cloud.sent()); diff != "" {
		t.Errorf("sent -want +got:\n%s", diff)
	}
	st := buf.Stats()
	if st.Messages != 0 || st.Poisoned != 1 {
		t.Errorf("buffer after send: %+v", st)
	}
}

// A message whose publish fails PoisonLimit times in a row is set aside.
func TestSenderSetsPoisonAside(t *testing.T) {
	buf := openBuffer(t)
	_, _ = buf.Put(&buffer.Entry{Topic: "t", Payload: []byte("bad")})
	s := &Sender{Buf: buf, Log: slog.New(slog.DiscardHandler), Route: func(e *buffer.Entry) ([]mqtt.Message, error) {
		return []mqtt.Message{{Topic: "x", Payload: e.Payload}}, nil
	}}
	cloud := &fakeCloud{broken: true}
	for i := range PoisonLimit {
		if err := s.Send(context.Background(), cloud, nil); err == nil {
			t.Fatalf("attempt %d: no error", i)
		}
	}
	if st := buf.Stats(); st.Messages != 0 || st.Poisoned != 1 {
		t.Errorf("after %d failures: %+v", PoisonLimit, st)
	}
}

// Nil entries only keep their acknowledgement in order with stored ones.
func TestIntakeAcksInOrder(t *testing.T) {
	buf := openBuffer(t)
	in := NewIntake(buf, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go in.Run(ctx)
	var mu sync.Mutex
	var acks []int
	all := make(chan struct{})
	for i := range 10 {
		var e *buffer.Entry
		if i%2 == 0 {
			e = &buffer.Entry{Topic: "t", Payload: []byte{byte(i)}}
		}
		in.Put(ctx, e, func() {
			mu.Lock()
			acks = append(acks, i)
			if len(acks) == 10 {
				close(all)
			}
			mu.Unlock()
		})
	}
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatal("not all acknowledged")
	}
	if diff := cmp.Diff([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, acks); diff != "" {
		t.Errorf("acks -want +got:\n%s", diff)
	}
	if n := buf.Stats().Messages; n != 5 {
		t.Errorf("%d stored, want 5", n)
	}
}

func TestBackoffBands(t *testing.T) {
	b := &Backoff{Env: Env{BackoffInit: 60 * time.Second, BackoffMax: 240 * time.Second, BackoffMul: 2}}
	for i, want := range []time.Duration{60, 120, 240, 240} {
		got := b.Next()
		lo, hi := time.Duration(float64(want*time.Second)*0.75), time.Duration(float64(want*time.Second)*1.25)
		if got < lo || got > hi {
			t.Errorf("wait %d: %v not in [%v, %v]", i, got, lo, hi)
		}
	}
}

func TestReadEnv(t *testing.T) {
	e, err := ReadEnv(func(k string) string {
		return map[string]string{"HUB_CONNECT_INIT": "1", "HUB_CONNECT_MAX": "2", "LOCAL_CLIENTID": "l", "HUB_PUBLISH_ACK_TIMEOUT": "3"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.BackoffInit != time.Second || e.BackoffMax != 2*time.Second || e.LocalClientID != "l" || e.CloudClientID != "cloud" || e.PublishAckTimeout != 3*time.Second {
		t.Errorf("env %+v", e)
	}
	for _, bad := range []map[string]string{{"HUB_CONNECT_MUL": "0.5"}, {"HUB_CONNECT_INIT": "x"}, {"HUB_CONNECT_INIT": "10", "HUB_CONNECT_MAX": "1"}, {"HUB_CONNECT_AUTH_ERR_RETRIES": "0"}} {
		if _, err := ReadEnv(func(k string) string { return bad[k] }); !errors.Is(err, ErrConfig) {
			t.Errorf("%v: err %v", bad, err)
		}
	}
}
