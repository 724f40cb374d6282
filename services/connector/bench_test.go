package connector_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kantofw/kanto/internal/mosquittotest"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// BenchmarkTelemetryQoS1 measures QoS 1 telemetry from a local app to the
// cloud broker through our connector and, as the ceiling, through a
// Mosquitto bridge between the same kind of brokers, in the same run.
// bench/connector.sh prints the ratio.
func BenchmarkTelemetryQoS1(b *testing.B) {
	const n = 20000
	for _, mode := range []struct {
		name string
		n    int
		rate int // messages/s; 0 = as fast as the path takes them
	}{{"max", n, 0}, {"paced1k", 3000, 1000}} {
		b.Run(mode.name, func(b *testing.B) { benchPaths(b, mode.n, mode.rate) })
	}
}

func benchPaths(b *testing.B, n, rate int) {
	b.Run("connector", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			w := newWorld(b, worldOptions{})
			w.settings["logLevel"] = "INFO"
			w.start()
			w.awaitCause(0, "connected")
			b.StartTimer()
			report(b, measure(b, w.local.URL(), w.hub.URL(), "telemetry/T/ns:gw", n, rate))
		}
	})
	b.Run("bridge", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			hub := mosquittotest.Start(b, mosquittotest.Options{Extra: "max_queued_messages 1000000\n"})
			local := mosquittotest.Start(b, mosquittotest.Options{Extra: fmt.Sprintf(
				"max_queued_messages 1000000\nconnection cloud\naddress %s\ntopic telemetry/# out 1\ncleansession false\n", hub.Addr())})
			time.Sleep(500 * time.Millisecond) // the bridge connects
			b.StartTimer()
			report(b, measure(b, local.URL(), hub.URL(), "telemetry/T/ns:gw", n, rate))
		}
	})
}

type result struct {
	msgsPerSec float64
	p50, p99   time.Duration
}

func report(b *testing.B, r result) {
	b.ReportMetric(r.msgsPerSec, "msgs/s")
	b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99-ms")
}

// measure publishes n QoS 1 messages (up to 100 in flight) on localURL and
// times their arrival on hubURL; payloads carry the send time.
func measure(b *testing.B, localURL, hubURL, topic string, n, rate int) result {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var mu sync.Mutex
	lat := make([]time.Duration, 0, n)
	done := make(chan struct{})
	var last time.Time
	sub := mqtt.New(mqtt.Options{URL: hubURL, ClientID: "bench-sub", QueueDepth: 1 << 16})
	if err := sub.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Subscribe(ctx, "telemetry/#", 1, func(_ context.Context, m mqtt.Message) {
		now := time.Now()
		sent := time.Unix(0, int64(binary.BigEndian.Uint64(m.Payload)))
		mu.Lock()
		lat = append(lat, now.Sub(sent))
		if len(lat) == n {
			last = now
			close(done)
		}
		mu.Unlock()
	}); err != nil {
		b.Fatal(err)
	}
	pub := mqtt.New(mqtt.Options{URL: localURL, ClientID: "bench-pub"})
	if err := pub.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	payload := make([]byte, 256)
	start := time.Now()
	window := make(chan struct{}, 100)
	var pace *time.Ticker
	if rate > 0 {
		pace = time.NewTicker(time.Second / time.Duration(rate))
		defer pace.Stop()
	}
	for range n {
		if pace != nil {
			<-pace.C
		}
		window <- struct{}{}
		p := slices.Clone(payload)
		binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano()))
		ch := pub.PublishAsync(mqtt.Message{Topic: topic, Payload: p, QoS: 1})
		go func() { <-ch; <-window }()
	}
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		got := len(lat)
		mu.Unlock()
		b.Fatalf("only %d of %d messages arrived", got, n)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	return result{
		msgsPerSec: float64(n) / last.Sub(start).Seconds(),
		p50:        lat[len(lat)/2],
		p99:        lat[len(lat)*99/100],
	}
}
