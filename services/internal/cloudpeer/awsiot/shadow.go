package awsiot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Shadow is one device shadow as the Device Shadow service keeps it.
type Shadow struct {
	Desired  map[string]any
	Reported map[string]any
	Version  int64
	// meta mirrors the state with {"timestamp": n} leaves.
	metaDesired, metaReported map[string]any
	exists                    bool
}

// shadowError is a rejected response (AWS's error document).
type shadowError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *shadowError) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Message) }

func rejected(code int, msg string) *shadowError { return &shadowError{Code: code, Message: msg} }

// updateRequest is the payload of …/shadow/update.
type updateRequest struct {
	State       json.RawMessage `json:"state"`
	ClientToken string          `json:"clientToken,omitempty"`
	Version     *int64          `json:"version,omitempty"`
}

func decode(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

// update applies an update request as AWS documents it: null deletes a
// key, objects merge, everything else (arrays included) replaces. It
// returns the accepted document, the documents document, and the delta
// (nil when none is due).
func (s *Shadow) update(payload []byte, maxSize int, now time.Time) (accepted, documents, delta map[string]any, err error) {
	if len(payload) > maxSize {
		return nil, nil, nil, rejected(413, "The payload exceeds the maximum size allowed")
	}
	var req updateRequest
	if err := decode(payload, &req); err != nil {
		return nil, nil, nil, rejected(400, "Payload contains invalid json")
	}
	if len(req.State) == 0 {
		return nil, nil, nil, rejected(400, "Missing required node: state")
	}
	var state map[string]any
	if err := decode(req.State, &state); err != nil || state == nil {
		return nil, nil, nil, rejected(400, "State node must be an object")
	}
	for k := range state {
		if k != "desired" && k != "reported" {
			return nil, nil, nil, rejected(400, "Unsupported node: state."+k)
		}
	}
	if req.Version != nil && s.exists && *req.Version != s.Version {
		return nil, nil, nil, rejected(409, "Version conflict")
	}
	prev := s.document(false)
	ts := now.Unix()
	acceptedState, acceptedMeta := map[string]any{}, map[string]any{}
	desiredChanged := false
	for _, part := range []string{"desired", "reported"} {
		v, ok := state[part]
		if !ok {
			continue
		}
		dst, meta := &s.Desired, &s.metaDesired
		if part == "reported" {
			dst, meta = &s.Reported, &s.metaReported
		}
		if v == nil {
			*dst, *meta = nil, nil
			acceptedState[part] = nil
			continue
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, nil, nil, rejected(400, "Invalid "+part+" node: must be an object")
		}
		if *dst == nil {
			*dst, *meta = map[string]any{}, map[string]any{}
		}
		merge(*dst, *meta, obj, ts)
		acceptedState[part] = obj
		acceptedMeta[part] = stamp(obj, ts)
		if part == "desired" {
			desiredChanged = true
		}
	}
	if len(s.Desired) == 0 {
		s.Desired, s.metaDesired = nil, nil
	}
	if len(s.Reported) == 0 {
		s.Reported, s.metaReported = nil, nil
	}
	s.Version++
	s.exists = true
	accepted = map[string]any{"state": acceptedState, "metadata": acceptedMeta, "version": s.Version, "timestamp": ts}
	cur := s.document(false)
	documents = map[string]any{"previous": prev, "current": cur, "timestamp": ts}
	if req.ClientToken != "" {
		accepted["clientToken"] = req.ClientToken
		documents["clientToken"] = req.ClientToken
	}
	if d := deltaOf(s.Desired, s.Reported); desiredChanged && len(d) > 0 {
		delta = map[string]any{"version": s.Version, "timestamp": ts, "state": d, "metadata": pick(s.metaDesired, d)}
		if req.ClientToken != "" {
			delta["clientToken"] = req.ClientToken
		}
	}
	return accepted, documents, delta, nil
}

// document is the shadow as …/get/accepted returns it (with delta when
// withDelta), or the state part of a documents message.
func (s *Shadow) document(withDelta bool) map[string]any {
	if !s.exists {
		return nil
	}
	state, meta := map[string]any{}, map[string]any{}
	if s.Desired != nil {
		state["desired"], meta["desired"] = s.Desired, s.metaDesired
	}
	if s.Reported != nil {
		state["reported"], meta["reported"] = s.Reported, s.metaReported
	}
	if d := deltaOf(s.Desired, s.Reported); withDelta && len(d) > 0 {
		state["delta"] = d
	}
	return deepCopy(map[string]any{"state": state, "metadata": meta, "version": s.Version}).(map[string]any)
}

func merge(dst, meta, src map[string]any, ts int64) {
	for k, v := range src {
		switch x := v.(type) {
		case nil:
			delete(dst, k)
			delete(meta, k)
		case map[string]any:
			d, ok := dst[k].(map[string]any)
			if !ok {
				d = map[string]any{}
				dst[k] = d
			}
			m, ok := meta[k].(map[string]any)
			if !ok || m["timestamp"] != nil {
				m = map[string]any{}
				meta[k] = m
			}
			merge(d, m, x, ts)
			if len(d) == 0 {
				delete(dst, k)
				delete(meta, k)
			}
		default:
			dst[k] = deepCopy(v)
			meta[k] = map[string]any{"timestamp": ts}
		}
	}
}

// stamp is the metadata of an update: the same shape with timestamps.
func stamp(obj map[string]any, ts int64) map[string]any {
	out := map[string]any{}
	for k, v := range obj {
		if m, ok := v.(map[string]any); ok {
			out[k] = stamp(m, ts)
		} else {
			out[k] = map[string]any{"timestamp": ts}
		}
	}
	return out
}

// deltaOf is what desired holds that reported does not (recursively).
func deltaOf(desired, reported map[string]any) map[string]any {
	out := map[string]any{}
	for k, dv := range desired {
		rv, ok := reported[k]
		dm, dIsObj := dv.(map[string]any)
		rm, rIsObj := rv.(map[string]any)
		switch {
		case ok && dIsObj && rIsObj:
			if sub := deltaOf(dm, rm); len(sub) > 0 {
				out[k] = sub
			}
		case !ok || !equalValues(dv, rv):
			out[k] = deepCopy(dv)
		}
	}
	return out
}

// equalValues compares JSON values, numbers by their value.
func equalValues(a, b any) bool {
	an, aok := a.(json.Number)
	bn, bok := b.(json.Number)
	if aok && bok {
		af, _ := an.Float64()
		bf, _ := bn.Float64()
		return af == bf
	}
	return reflect.DeepEqual(a, b)
}

func pick(meta, shape map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range shape {
		if m, ok := v.(map[string]any); ok {
			if mm, ok := meta[k].(map[string]any); ok {
				out[k] = pick(mm, m)
			}
			continue
		}
		out[k] = meta[k]
	}
	return out
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}

// shadowTopic splits $aws/things/<thing>/shadow[/name/<name>]/<op>.
func shadowTopic(topic string) (thing, name, op string, err error) {
	rest, ok := strings.CutPrefix(topic, "$aws/things/")
	if !ok {
		return "", "", "", errors.New("not a shadow topic")
	}
	thing, rest, ok = strings.Cut(rest, "/shadow/")
	if !ok || thing == "" {
		return "", "", "", errors.New("not a shadow topic")
	}
	if after, ok := strings.CutPrefix(rest, "name/"); ok {
		name, op, ok = strings.Cut(after, "/")
		if !ok || name == "" {
			return "", "", "", errors.New("bad named shadow topic")
		}
		return thing, name, op, nil
	}
	return thing, "", rest, nil
}

// ShadowPrefix is the topic prefix of a shadow (name "" is the classic one).
func ShadowPrefix(thing, name string) string {
	if name == "" {
		return "$aws/things/" + thing + "/shadow"
	}
	return "$aws/things/" + thing + "/shadow/name/" + name
}
