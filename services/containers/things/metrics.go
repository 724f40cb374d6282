package things

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kantofw/kanto/services/containers/metrics"
	"github.com/kantofw/kanto/services/containers/model"
)

// Sampler reads a container's resource use; metrics.Reader implements it.
type Sampler interface {
	Read(pid int) (metrics.Sample, error)
}

var _ Sampler = metrics.Reader{}

type filter struct {
	ID         []string `json:"id"`
	Originator string   `json:"originator"`
}

type metricsReq struct {
	Frequency json.RawMessage `json:"frequency"`
	Filter    []filter        `json:"filter"`
}

// parseFrequency accepts a duration string ("5s") or a number of seconds.
func parseFrequency(raw json.RawMessage) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if d, err := time.ParseDuration(s); err == nil {
			return d, nil
		}
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return time.Duration(n * float64(time.Second)), nil
		}
		return 0, fmt.Errorf("invalid frequency %q: %w", s, errBadParam)
	}
	var n float64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf("invalid frequency %s: %w", raw, errBadParam)
	}
	return time.Duration(n * float64(time.Second)), nil
}

func (t *Things) metricsRequest(ctx context.Context, op string, raw json.RawMessage) error {
	if op != "request" {
		return fmt.Errorf("unknown operation %s: %w", op, errNotFound)
	}
	var req metricsReq
	if err := json.Unmarshal(raw, &req); err != nil {
		return fmt.Errorf("%v: %w", err, errBadParam)
	}
	freq, err := parseFrequency(req.Frequency)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.metrics != nil {
		t.metrics.stop()
		t.metrics = nil
	}
	if freq <= 0 {
		return nil
	}
	freq = max(freq, time.Second)
	ml := &metricsLoop{t: t, filters: req.Filter, prev: map[string]metrics.Sample{}, done: make(chan struct{})}
	t.metrics = ml
	// Owned by t: ends when a new request replaces it or Run ends.
	go ml.run(context.WithoutCancel(ctx), freq)
	return nil
}

type metricsLoop struct {
	t       *Things
	filters []filter
	mu      sync.Mutex
	prev    map[string]metrics.Sample
	done    chan struct{}
	once    sync.Once
}

func (l *metricsLoop) stop() { l.once.Do(func() { close(l.done) }) }

func (l *metricsLoop) forget(id string) {
	l.mu.Lock()
	delete(l.prev, id)
	l.mu.Unlock()
}

func (l *metricsLoop) run(ctx context.Context, every time.Duration) {
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-tk.C:
			l.tick(ctx)
		}
	}
}

func (l *metricsLoop) match(originator string) bool {
	if len(l.filters) == 0 {
		return true
	}
	for _, f := range l.filters {
		if f.Originator != "" && f.Originator != originator {
			continue
		}
		if len(f.ID) == 0 {
			return true
		}
		return true // measurement ids are filtered per measurement below
	}
	return false
}

func (l *metricsLoop) wanted(originator, id string) bool {
	if len(l.filters) == 0 {
		return true
	}
	for _, f := range l.filters {
		if f.Originator != "" && f.Originator != originator {
			continue
		}
		if len(f.ID) == 0 {
			return true
		}
		for _, want := range f.ID {
			if want == id || (strings.HasSuffix(want, "*") && strings.HasPrefix(id, strings.TrimSuffix(want, "*"))) {
				return true
			}
		}
	}
	return false
}

type measurement struct {
	ID    string  `json:"id"`
	Value float64 `json:"value"`
}

type snapshot struct {
	Originator   string        `json:"originator"`
	Measurements []measurement `json:"measurements"`
}

func (l *metricsLoop) tick(ctx context.Context) {
	var snaps []snapshot
	for _, c := range l.t.m.List() {
		if c.State == nil || (c.State.Status != model.Running && c.State.Status != model.Paused) || c.State.Pid <= 0 {
			continue
		}
		orig := "Container:" + c.ID
		if !l.match(orig) {
			continue
		}
		s, err := l.t.o.Sampler.Read(int(c.State.Pid))
		if err != nil {
			continue
		}
		l.mu.Lock()
		prev, had := l.prev[c.ID]
		l.prev[c.ID] = s
		l.mu.Unlock()
		all := []measurement{
			{"memory.total", float64(s.MemoryTotal)},
			{"memory.used", float64(s.MemoryUsed)},
			{"io.readBytes", float64(s.IORead)},
			{"io.writeBytes", float64(s.IOWrite)},
			{"net.readBytes", float64(s.NetRead)},
			{"net.writeBytes", float64(s.NetWrite)},
			{"pids", float64(s.Pids)},
		}
		if s.MemoryTotal > 0 {
			all = append(all, measurement{"memory.utilization", float64(s.MemoryUsed) / float64(s.MemoryTotal) * 100})
		}
		if had {
			all = append([]measurement{{"cpu.utilization", metrics.CPUUtilization(prev, s, runtime.NumCPU())}}, all...)
		}
		var ms []measurement
		for _, m := range all {
			if l.wanted(orig, m.ID) {
				ms = append(ms, m)
			}
		}
		if len(ms) > 0 {
			snaps = append(snaps, snapshot{Originator: orig, Measurements: ms})
		}
	}
	if len(snaps) == 0 {
		return
	}
	data := map[string]any{"snapshot": snaps, "timestamp": time.Now().Unix()}
	if err := l.t.live(ctx, "Metrics", "data", data); err != nil {
		l.t.log.Warn("metrics data", "err", err)
	}
}
