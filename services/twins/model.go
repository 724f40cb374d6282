package twins

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"time"

	"github.com/kantofw/kanto/services/internal/ditto"
)

// record is one thing as stored: the thing's JSON and its sync state.
type record struct {
	Thing     map[string]any `json:"thing"`
	Revision  int64          `json:"revision"`
	Timestamp string         `json:"timestamp"`
	// Dirty is the revision of a thing-level change (create or modify of
	// the whole thing) the cloud has not confirmed; 0 when in sync.
	Dirty int64 `json:"dirty,omitempty"`
	// Unsynced maps a feature to the revision of its latest change the
	// cloud has not confirmed.
	Unsynced map[string]int64 `json:"unsynced,omitempty"`
	// Deleted lists features removed locally whose removal the cloud has
	// not confirmed (feature -> revision).
	Deleted map[string]int64 `json:"deleted,omitempty"`
}

func (r *record) clone() *record {
	if r == nil {
		return nil
	}
	c := *r
	c.Thing = cloneJSON(r.Thing).(map[string]any)
	c.Unsynced = maps.Clone(r.Unsynced)
	c.Deleted = maps.Clone(r.Deleted)
	return &c
}

func cloneJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = cloneJSON(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = cloneJSON(e)
		}
		return s
	default:
		return v
	}
}

func (r *record) features() (map[string]any, bool) {
	f, ok := r.Thing["features"].(map[string]any)
	return f, ok
}

func (r *record) feature(id string) (map[string]any, bool) {
	fs, _ := r.features()
	f, ok := fs[id].(map[string]any)
	return f, ok
}

// touch bumps the revision after a change.
func (r *record) touch(now time.Time) {
	r.Revision++
	r.Timestamp = now.UTC().Format(time.RFC3339Nano)
}

func (r *record) featureChanged(f string) {
	if r.Unsynced == nil {
		r.Unsynced = map[string]int64{}
	}
	r.Unsynced[f] = r.Revision
	delete(r.Deleted, f)
}

func (r *record) featureRemoved(f string) {
	if r.Deleted == nil {
		r.Deleted = map[string]int64{}
	}
	r.Deleted[f] = r.Revision
	delete(r.Unsynced, f)
}

// newThing is an empty thing (auto-provisioning). It is not marked for a
// thing-level sync: the cloud's thing exists already (Hono's gateway
// auto-provisioning) and must not be replaced by an empty one; its
// features are synchronised one by one.
func newThing(id string, now time.Time) *record {
	r := &record{Thing: map[string]any{"thingId": id}}
	r.touch(now)
	return r
}

// decodeValue parses a command value keeping numbers exact.
func decodeValue(raw json.RawMessage) (any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("no value")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the value")
	}
	return v, nil
}

var errType = errors.New("wrong type")

func asObject(v any, what string) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s must be a JSON object", errType, what)
	}
	return m, nil
}

// checkFeature validates a feature value.
func checkFeature(v any, id string) (map[string]any, error) {
	f, err := asObject(v, "feature "+id)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"properties", "desiredProperties"} {
		if p, ok := f[k]; ok {
			if _, err := asObject(p, k+" of feature "+id); err != nil {
				return nil, err
			}
		}
	}
	if d, ok := f["definition"]; ok {
		arr, ok := d.([]any)
		if !ok {
			return nil, fmt.Errorf("%w: definition of feature %s must be an array of strings", errType, id)
		}
		for _, e := range arr {
			if _, ok := e.(string); !ok {
				return nil, fmt.Errorf("%w: definition of feature %s must be an array of strings", errType, id)
			}
		}
	}
	return f, nil
}

func checkFeatures(v any) (map[string]any, error) {
	fs, err := asObject(v, "features")
	if err != nil {
		return nil, err
	}
	for id, f := range fs {
		if _, err := checkFeature(f, id); err != nil {
			return nil, err
		}
	}
	return fs, nil
}

// checkThing validates a whole thing value against the topic's id.
func checkThing(v any, id string) (map[string]any, *thingError) {
	t, err := asObject(v, "thing")
	if err != nil {
		return nil, errJSONInvalid(err)
	}
	if raw, ok := t["thingId"]; ok {
		s, isStr := raw.(string)
		if !isStr {
			return nil, errJSONInvalid(fmt.Errorf("%w: thingId must be a string", errType))
		}
		if s != id {
			return nil, errIDNotSettable()
		}
	}
	if p, ok := t["policyId"]; ok {
		if _, isStr := p.(string); !isStr {
			return nil, errJSONInvalid(fmt.Errorf("%w: policyId must be a string", errType))
		}
	}
	if a, ok := t["attributes"]; ok {
		if _, err := asObject(a, "attributes"); err != nil {
			return nil, errJSONInvalid(err)
		}
	}
	if fs, ok := t["features"]; ok {
		if _, err := checkFeatures(fs); err != nil {
			return nil, errJSONInvalid(err)
		}
	}
	t["thingId"] = id
	return t, nil
}

func equalJSON(a, b any) bool { return reflect.DeepEqual(a, b) }

// marshalThing encodes a thing's JSON.
func marshal(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

var _ = ditto.ContentTypeDitto
