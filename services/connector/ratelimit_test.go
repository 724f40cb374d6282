package connector

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/time/rate"

	"github.com/kantofw/kanto/services/internal/mqtt"
)

func TestMessageRateEnv(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  float64
		err   bool
	}{
		{"", 0, false},
		{"5", 5, false},
		{"0.5", 0.5, false},
		{"0", 0, false},  // ≤ 0 disables the limiter, as upstream
		{"-3", 0, false}, // likewise
		{"fast", 0, true},
		{"1e400", 0, true}, // out of range is not a number we can use
	} {
		t.Run(tc.value, func(t *testing.T) {
			e, err := ReadEnv(func(k string) string {
				if k == "MESSAGE_RATE" {
					return tc.value
				}
				return ""
			})
			if tc.err {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("err = %v, want ErrConfig", err)
				}
				return
			}
			if err != nil || e.MessageRate != tc.want {
				t.Fatalf("MessageRate = %v, %v; want %v", e.MessageRate, err, tc.want)
			}
		})
	}
}

type recordingPub struct{ got []string }

func (p *recordingPub) PublishAsync(m mqtt.Message) <-chan error {
	p.got = append(p.got, m.Topic)
	ch := make(chan error, 1)
	ch <- nil
	return ch
}

// TestRateLimitedPublisher checks the token bucket of MESSAGE_RATE without
// timing: the bucket is the rate with burst 1 (upstream), order and count
// are kept, and a message waits for its token: with a rate that never
// refills, the second one goes out only if the wait is skipped.
func TestRateLimitedPublisher(t *testing.T) {
	ctx := context.Background()
	pub := &recordingPub{}
	r := newRateLimited(ctx, pub, 1000)
	if r.l.Burst() != 1 || r.l.Limit() != rate.Limit(1000) {
		t.Fatalf("bucket %v/s burst %d, want 1000/s burst 1", r.l.Limit(), r.l.Burst())
	}
	for i := range 20 {
		if err := <-r.PublishAsync(mqtt.Message{Topic: fmt.Sprint("t/", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i, topic := range pub.got {
		if topic != fmt.Sprint("t/", i) {
			t.Fatalf("publish %d went out as %s", i, topic)
		}
	}
	if len(pub.got) != 20 {
		t.Fatalf("%d published, want 20", len(pub.got))
	}

	// A rate this low never refills during the test: the wait must end with
	// the context, and nothing may reach the hub.
	cctx, cancel := context.WithCancel(ctx)
	slow := newRateLimited(cctx, pub, 1e-6)
	<-slow.PublishAsync(mqtt.Message{Topic: "first"}) // takes the only token
	cancel()
	if err := <-slow.PublishAsync(mqtt.Message{Topic: "second"}); err == nil {
		t.Fatal("publish after cancel succeeded")
	}
	if last := pub.got[len(pub.got)-1]; last != "first" {
		t.Fatalf("last published %q, want first (second must not go out)", last)
	}
}
