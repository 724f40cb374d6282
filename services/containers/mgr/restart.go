package mgr

import (
	"time"

	"github.com/kantofw/kanto/services/containers/model"
)

const (
	backoffStart = 100 * time.Millisecond
	backoffMax   = time.Minute
	// A run this long resets the backoff.
	stableRun = 10 * time.Second
)

// shouldRestart is the restart decision for a container that stopped
// running with exitCode. A manual stop is final for every policy (as in
// Docker); upstream restarts "always" containers even then.
func shouldRestart(c *model.Container, exitCode int64) bool {
	rp := c.HostConfig.RestartPolicy
	if rp == nil || c.ManuallyStopped || !c.StartedSuccessfullyBefore {
		return false
	}
	switch rp.Type {
	case model.RestartAlways, model.RestartUnlessStopped:
		return true
	case model.RestartOnFailure:
		return exitCode != 0 && (rp.MaximumRetryCount == 0 || c.RestartCount < rp.MaximumRetryCount)
	}
	return false
}

// nextDelay is the backoff before the next restart: 100ms doubling per
// restart, capped at the policy's retry timeout (or a minute), and reset
// after a run of at least 10s.
func nextDelay(prev time.Duration, rp *model.RestartPolicy, ran time.Duration) time.Duration {
	ceiling := backoffMax
	if rp != nil && rp.RetryTimeout > 0 {
		ceiling = rp.RetryTimeout
	}
	d := prev * 2
	if prev == 0 || ran >= stableRun {
		d = backoffStart
	}
	return min(d, ceiling)
}
