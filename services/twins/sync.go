package twins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// retrieveMany answers _/_/things/twin/commands/retrieve {"thingIds":[…]}.
func (s *Service) retrieveMany(ctx context.Context, env *ditto.Envelope, t ditto.Topic) {
	reply := func(res result) {
		if !env.Headers.ResponseRequired() {
			return
		}
		if res.err != nil {
			s.publishLocal(ctx, t.ThingID(), errorEnvelope(env, t, res.err), "errors-response")
			return
		}
		s.publishLocal(ctx, t.ThingID(), responseEnvelope(env, res), "retrieve-response")
	}
	var v struct {
		ThingIDs []string `json:"thingIds"`
	}
	if err := json.Unmarshal(env.Value, &v); err != nil || len(v.ThingIDs) == 0 {
		if err == nil {
			err = errors.New("thingIds is empty")
		}
		reply(fail(errJSONInvalid(err)))
		return
	}
	var sel [][]string
	if env.Fields != "" {
		var err error
		if sel, err = parseFields(env.Fields); err != nil {
			reply(fail(errFieldSelector(err)))
			return
		}
	}
	out := []any{}
	for _, id := range v.ThingIDs {
		if !strings.Contains(id, ":") {
			reply(fail(errIDInvalid(id)))
			return
		}
		rec, err := s.things.get(id)
		if err != nil {
			reply(fail(errUnknown("Thing storage failed", err)))
			return
		}
		if rec == nil {
			continue
		}
		if sel != nil {
			out = append(out, project(rec.Thing, sel))
		} else {
			out = append(out, rec.Thing)
		}
	}
	reply(result{status: statusOK, value: out, hasValue: true})
}

// ErrSync marks a synchronisation that could not finish.
var ErrSync = errors.New("synchronisation")

// synchronize brings the cloud and the local twins together after a
// (re)connect: deletes of whole things first, then per thing the cloud's
// desired properties down and the local changes up.
func (s *Service) synchronize(ctx context.Context, hub *mqtt.Client) error {
	tombs, err := s.things.tombstones()
	if err != nil {
		return err
	}
	for _, id := range tombs {
		if err := s.send(ctx, hub, id, "delete", "/", nil, nil); err != nil {
			return err
		}
		if err := s.things.clearTombstone(id); err != nil {
			return err
		}
	}
	ids, err := s.things.ids()
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.syncThing(ctx, hub, id); err != nil {
			return fmt.Errorf("%w: thing %s: %w", ErrSync, id, err)
		}
	}
	s.log.Info("twins synchronised with the cloud", "things", len(ids), "deleted", len(tombs))
	return nil
}

func (s *Service) syncThing(ctx context.Context, hub *mqtt.Client, id string) error {
	rec, err := s.things.get(id)
	if err != nil || rec == nil {
		return err
	}
	fs, _ := rec.features()
	// Cloud → local: desired properties. A thing without features has none
	// to ask for (upstream publishes a null command here).
	if len(fs) > 0 {
		names := keys(fs)
		slices.Sort(names)
		parts := make([]string, len(names))
		for i, f := range names {
			parts[i] = f + "/desiredProperties"
		}
		resp, err := s.retrieveDesired(ctx, hub, id, "features("+strings.Join(parts, ",")+")")
		switch {
		case err == nil:
			s.applyDesired(ctx, id, resp)
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			s.log.Warn("cloud desired properties not retrieved; local changes go up anyway", "thing", id, "err", err)
		}
	}
	// Local → cloud.
	rec, err = s.things.get(id)
	if err != nil || rec == nil {
		return err
	}
	rev := rec.Revision
	if rec.Dirty != 0 {
		if err := s.send(ctx, hub, id, "modify", "/", rec.Thing, nil); err != nil {
			return err
		}
		if err := s.things.synced(id, rev, true); err != nil {
			return err
		}
		return s.things.deletionsSynced(id, rev, keys(rec.Deleted))
	}
	fs, _ = rec.features()
	changed := keys(rec.Unsynced)
	slices.Sort(changed)
	for _, f := range changed {
		feat, ok := fs[f].(map[string]any)
		if !ok {
			continue
		}
		if _, hasDesired := feat["desiredProperties"]; hasDesired {
			props, ok := feat["properties"]
			if !ok {
				props = map[string]any{}
			}
			err = s.send(ctx, hub, id, "modify", "/features/"+f+"/properties", props, nil)
		} else {
			err = s.send(ctx, hub, id, "modify", "/features/"+f, feat, nil)
		}
		if err != nil {
			return err
		}
		if err := s.things.synced(id, rev, false, f); err != nil {
			return err
		}
	}
	if len(rec.Deleted) > 0 {
		patch := map[string]any{}
		for f := range rec.Deleted {
			patch[f] = nil
		}
		hdr := ditto.Headers{"content-type": ditto.ContentTypeMergePatch}
		if err := s.send(ctx, hub, id, "merge", "/features", patch, hdr); err != nil {
			return err
		}
		if err := s.things.deletionsSynced(id, rev, keys(rec.Deleted)); err != nil {
			return err
		}
	}
	return s.things.synced(id, rev, true)
}

// send publishes one twin command about thing id to the hub and waits for
// the PUBACK.
func (s *Service) send(ctx context.Context, hub *mqtt.Client, id, action, path string, value any, extra ditto.Headers) error {
	ns, name, _ := strings.Cut(id, ":")
	t := ditto.Topic{Namespace: ns, Name: name, Group: "things", Channel: "twin", Criterion: "commands", Action: action}
	h := ditto.Headers{"correlation-id": randomID(), "response-required": false}
	for k, v := range extra {
		h[k] = v
	}
	env := &ditto.Envelope{Topic: t.String(), Headers: h, Path: path}
	if value != nil {
		env.Value = marshal(value)
	}
	data, _ := json.Marshal(env)
	pctx, cancel := context.WithTimeout(ctx, s.o.Env.PublishAckTimeout)
	defer cancel()
	return hub.Publish(pctx, mqtt.Message{Topic: s.cloudTopic(id), Payload: data, QoS: 1})
}

// retrieveDesired asks the cloud for the desired properties of a thing;
// the answer comes back as a command (reply-to command/<tenant>).
func (s *Service) retrieveDesired(ctx context.Context, hub *mqtt.Client, id, fields string) (*ditto.Envelope, error) {
	ns, name, _ := strings.Cut(id, ":")
	t := ditto.Topic{Namespace: ns, Name: name, Group: "things", Channel: "twin", Criterion: "commands", Action: "retrieve"}
	corr := randomID()
	ch := make(chan *ditto.Envelope, 1)
	s.hubMu.Lock()
	s.pending[corr] = ch
	s.hubMu.Unlock()
	defer func() {
		s.hubMu.Lock()
		delete(s.pending, corr)
		s.hubMu.Unlock()
	}()
	env := &ditto.Envelope{Topic: t.String(), Path: "/", Fields: fields,
		Headers: ditto.Headers{"correlation-id": corr, "reply-to": "command/" + s.settings().TenantID}}
	data, _ := json.Marshal(env)
	pctx, cancel := context.WithTimeout(ctx, s.o.Env.PublishAckTimeout)
	err := hub.Publish(pctx, mqtt.Message{Topic: s.cloudTopic(id), Payload: data, QoS: 1})
	cancel()
	if err != nil {
		return nil, err
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(s.o.SyncTimeout):
		return nil, fmt.Errorf("%w: no answer to the retrieve within %v", ErrSync, s.o.SyncTimeout)
	case resp := <-ch:
		t, err := ditto.ParseTopic(resp.Topic)
		switch {
		case err != nil:
			return nil, err
		case t.Criterion == "errors":
			return nil, fmt.Errorf("%w: the cloud answered with an error (status %d): %s", ErrSync, resp.Status, resp.Value)
		case t.Criterion != "commands" || t.Action != "retrieve" || resp.Path != "/" || resp.Status >= 400:
			return nil, fmt.Errorf("%w: unexpected answer %s %s status %d", ErrSync, resp.Topic, resp.Path, resp.Status)
		case t.ThingID() != id:
			return nil, fmt.Errorf("%w: answer about %s, not %s", ErrSync, t.ThingID(), id)
		}
		return resp, nil
	}
}

// takePending consumes the cloud's answer to one of the sync's retrieves.
func (s *Service) takePending(env *ditto.Envelope) bool {
	id := env.Headers.CorrelationID()
	if id == "" {
		return false
	}
	s.hubMu.Lock()
	ch := s.pending[id]
	delete(s.pending, id)
	s.hubMu.Unlock()
	if ch == nil {
		return false
	}
	ch <- env
	return true
}

func (s *Service) forgetPending() {
	s.hubMu.Lock()
	clear(s.pending)
	s.hubMu.Unlock()
}

// applyDesired stores the cloud's desired properties of every local
// feature (removing them where the cloud has none) and tells local apps.
func (s *Service) applyDesired(ctx context.Context, id string, resp *ditto.Envelope) {
	v, err := decodeValue(resp.Value)
	if err != nil {
		s.log.Warn("cloud desired properties unreadable", "thing", id, "err", err)
		return
	}
	cloudFs, _ := pointerGet(v, []string{"features"})
	cloud, _ := cloudFs.(map[string]any)
	type change struct {
		feature string
		value   any // nil when the cloud has none: the event carries "value":null
	}
	var changes []change
	var rec *record
	s.mu.Lock()
	err = s.things.update(id, func(cur *record) (*record, bool, error) {
		if cur == nil {
			return nil, false, nil
		}
		fs, _ := cur.features()
		for f, fv := range fs {
			feat, ok := fv.(map[string]any)
			if !ok {
				continue
			}
			var want any
			has := false
			if cf, ok := cloud[f].(map[string]any); ok {
				want, has = cf["desiredProperties"]
				has = has && want != nil // null is none, as upstream reads it
			}
			old, hadOld := feat["desiredProperties"]
			switch {
			case has && (!hadOld || !equalJSON(old, want)):
				feat["desiredProperties"] = want
				changes = append(changes, change{feature: f, value: want})
			case !has && hadOld && !isEmptyObject(old):
				// Upstream sets the feature's desired properties to nil
				// (an empty object counts as none and is left alone).
				delete(feat, "desiredProperties")
				changes = append(changes, change{feature: f})
			}
		}
		if len(changes) == 0 {
			return nil, false, nil
		}
		// The cloud is the source of desired properties: the change is not
		// marked for sending back up.
		cur.touch(s.o.Now())
		rec = cur
		return cur, false, nil
	})
	s.mu.Unlock()
	if err != nil {
		s.log.Error("cloud desired properties not stored", "thing", id, "err", err)
		return
	}
	ns, name, _ := strings.Cut(id, ":")
	// Upstream (§3.5 of the reference) announces every change, removals
	// included, as "modified" with the new desired properties as value,
	// which is null for a removal; local apps watch for that event alone.
	t := ditto.Topic{Namespace: ns, Name: name, Group: "things", Channel: "twin", Criterion: "events", Action: "modified"}
	for _, c := range changes {
		ev := &ditto.Envelope{Topic: t.String(), Path: "/features/" + c.feature + "/desiredProperties", Value: marshal(c.value),
			Revision: rec.Revision, Timestamp: rec.Timestamp,
			Headers: ditto.Headers{"response-required": false, "content-type": ditto.ContentTypeDitto}}
		s.publishLocal(ctx, id, ev, t.Action)
	}
}

// isEmptyObject tells whether v is the JSON object {}.
func isEmptyObject(v any) bool {
	m, ok := v.(map[string]any)
	return ok && len(m) == 0
}
