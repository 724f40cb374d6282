package feature

import (
	"encoding/json"
	"time"
)

// executor runs task at from (or now), then every period, until to.
type executor struct {
	stop chan struct{}
	done chan struct{}
}

// clock is the seam tests replace to drive the executor.
type clock interface {
	Now() time.Time
	NewTimer(d time.Duration) (<-chan time.Time, func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

func startExecutor(c clock, from, to *time.Time, period time.Duration, task func()) *executor {
	e := &executor{stop: make(chan struct{}), done: make(chan struct{})}
	go e.run(c, from, to, period, task)
	return e
}

func (e *executor) run(c clock, from, to *time.Time, period time.Duration, task func()) {
	defer close(e.done)
	next := c.Now()
	if from != nil && from.After(next) {
		next = *from
	}
	for {
		if to != nil && next.After(*to) {
			return
		}
		ch, stop := c.NewTimer(next.Sub(c.Now()))
		select {
		case <-e.stop:
			stop()
			return
		case <-ch:
		}
		if to != nil && c.Now().After(*to) {
			return
		}
		task()
		next = next.Add(period)
		if now := c.Now(); next.Before(now) {
			next = now // a task longer than the period: no burst of catch-up runs
		}
	}
}

// halt stops the executor and waits for it; a running task finishes first.
func (e *executor) halt() {
	close(e.stop)
	<-e.done
}

func (f *Feature) activateOp(raw json.RawMessage) *opError {
	req, err := ParseActivate(raw)
	if err != nil {
		return badRequest(err)
	}
	f.activate(req.From, req.To)
	return nil
}

// activate (re)starts periodic uploads in [from, to] and publishes
// autoUpload.
func (f *Feature) activate(from, to *time.Time) {
	f.deactivateTimer()
	period := f.cfg.Period
	if period <= 0 {
		period = 10 * time.Hour
	}
	auto := autoUpload{Active: true, StartTime: from, EndTime: to}
	f.mu.Lock()
	f.auto = auto
	f.timer = startExecutor(f.clock(), from, to, period, func() {
		if err := f.doTrigger(TriggerRequest{}); err != nil {
			f.log.Warn("periodic upload not triggered", "err", err.err)
		}
	})
	f.mu.Unlock()
	f.log.Info("periodic upload activated", "from", from, "to", to, "period", period)
	f.publishAuto(auto)
}

func (f *Feature) deactivate() {
	f.deactivateTimer()
	auto := autoUpload{}
	f.mu.Lock()
	f.auto = auto
	f.mu.Unlock()
	f.publishAuto(auto)
}

func (f *Feature) deactivateTimer() {
	f.mu.Lock()
	t := f.timer
	f.timer = nil
	f.mu.Unlock()
	if t != nil {
		t.halt()
	}
}

func (f *Feature) clock() clock {
	if f.clk != nil {
		return f.clk
	}
	return realClock{}
}
