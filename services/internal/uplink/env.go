package uplink

import (
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"time"
)

var errorsIs = errors.Is

// ErrConfig marks settings that cannot work.
var ErrConfig = errors.New("invalid settings")

// Env holds the environment overrides upstream reads.
type Env struct {
	LocalClientID, CloudClientID string
	BackoffInit, BackoffMax      time.Duration
	BackoffMul                   float64
	AuthRetries                  int
	// PublishAckTimeout bounds the wait for a PUBACK of a direct publish
	// (HUB_PUBLISH_ACK_TIMEOUT, 15 s).
	PublishAckTimeout time.Duration
	// AnnounceDelay is HUB_PARAMS_ANNOUNCE_TIMEOUT (LDT, 5 s).
	AnnounceDelay time.Duration
	// TracePrefixes is TRACE_TOPIC_PREFIX split on commas, as upstream
	// (no trimming; an empty item matches every topic): the payloads of
	// handled messages whose topic starts with one of them are logged at
	// DEBUG. Nil when unset.
	TracePrefixes []string
	// MQTTLogLevel is MQTT_LOG_LEVEL as given: when set, the MQTT library's
	// own log is switched on at that level (logging.ParseLevel names).
	MQTTLogLevel string
}

// ReadEnv reads the overrides; invalid numbers are errors naming the variable.
func ReadEnv(getenv func(string) string) (Env, error) {
	e := Env{
		LocalClientID: "connector", CloudClientID: "cloud",
		BackoffInit: 60 * time.Second, BackoffMax: 240 * time.Second, BackoffMul: 2,
		AuthRetries: 5, PublishAckTimeout: 15 * time.Second, AnnounceDelay: 5 * time.Second,
	}
	if v := getenv("TRACE_TOPIC_PREFIX"); v != "" {
		e.TracePrefixes = strings.Split(v, ",")
	}
	e.MQTTLogLevel = getenv("MQTT_LOG_LEVEL")
	if v := getenv("LOCAL_CLIENTID"); v != "" {
		e.LocalClientID = v
	}
	if v := getenv("CLOUD_CLIENTID"); v != "" {
		e.CloudClientID = v
	}
	secs := func(name string, dst *time.Duration) error {
		if v := getenv(name); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 {
				return fmt.Errorf("%s=%q: want seconds >= 0: %w", name, v, ErrConfig)
			}
			*dst = time.Duration(f * float64(time.Second))
		}
		return nil
	}
	for name, dst := range map[string]*time.Duration{
		"HUB_CONNECT_INIT": &e.BackoffInit, "HUB_CONNECT_MAX": &e.BackoffMax,
		"HUB_PUBLISH_ACK_TIMEOUT": &e.PublishAckTimeout, "HUB_PARAMS_ANNOUNCE_TIMEOUT": &e.AnnounceDelay,
	} {
		if err := secs(name, dst); err != nil {
			return e, err
		}
	}
	if v := getenv("HUB_CONNECT_MUL"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 1 {
			return e, fmt.Errorf("HUB_CONNECT_MUL=%q: want a number >= 1: %w", v, ErrConfig)
		}
		e.BackoffMul = f
	}
	if v := getenv("HUB_CONNECT_AUTH_ERR_RETRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return e, fmt.Errorf("HUB_CONNECT_AUTH_ERR_RETRIES=%q: want an integer >= 1: %w", v, ErrConfig)
		}
		e.AuthRetries = n
	}
	if e.BackoffInit > e.BackoffMax {
		return e, fmt.Errorf("HUB_CONNECT_INIT (%v) must not exceed HUB_CONNECT_MAX (%v): %w", e.BackoffInit, e.BackoffMax, ErrConfig)
	}
	return e, nil
}

// Backoff is upstream's exponential backoff: init, ×mul up to max, ±25 %.
type Backoff struct {
	Env Env
	cur time.Duration
}

// Reset starts over after a successful connect.
func (b *Backoff) Reset() { b.cur = 0 }

// Next returns the next wait.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Env.BackoffInit
	} else {
		b.cur = time.Duration(math.Min(float64(b.cur)*b.Env.BackoffMul, float64(b.Env.BackoffMax)))
	}
	return time.Duration(float64(b.cur) * (0.75 + 0.5*mrand.Float64()))
}
