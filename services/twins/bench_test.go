package twins

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kantofw/kanto/services/internal/store"
)

// BenchmarkPersistedUpdates measures property modifies handled end to end
// in-process (parse, apply, one fsynced bbolt transaction, response and
// event encoded) next to raw bbolt writes of the same records (the same
// key and record bytes, one fsynced transaction each): the ratio is what
// the twin logic costs on top of the disk.
func BenchmarkPersistedUpdates(b *testing.B) {
	b.Run("twins", func(b *testing.B) {
		s, rec := newOffline(b, true)
		s.o.Now = time.Now
		ctx := context.Background()
		s.handleRaw(ctx, []byte(`{"topic":"ns/dev/things/twin/commands/modify","path":"/features/meter","value":{"properties":{"power":0,"site":"lab"}}}`))
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			cmd := fmt.Sprintf(`{"topic":"ns/dev/things/twin/commands/modify","headers":{"correlation-id":"c%d"},"path":"/features/meter/properties/power","value":%d}`, i, i)
			t0 := time.Now()
			s.handleRaw(ctx, []byte(cmd))
			lat = append(lat, time.Since(t0))
			rec.take()
		}
		report(b, lat)
	})
	b.Run("bbolt", func(b *testing.B) {
		db, err := store.Open(filepath.Join(b.TempDir(), "raw.db"), "raw", migrations)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		r := newThing("ns:dev", time.Now())
		r.Thing["features"] = map[string]any{"meter": map[string]any{"properties": map[string]any{"power": 0, "site": "lab"}}}
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			t0 := time.Now()
			r.Thing["features"].(map[string]any)["meter"].(map[string]any)["properties"].(map[string]any)["power"] = i
			r.touch(time.Now())
			r.featureChanged("meter")
			data, _ := json.Marshal(r)
			err := db.UpdateRoot(func(root *bolt.Bucket) error { return root.Bucket(thingsBucket).Put([]byte("ns:dev"), data) })
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		report(b, lat)
	})
}

func report(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	var total time.Duration
	for _, l := range lat {
		total += l
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/total.Seconds(), "updates/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
}
