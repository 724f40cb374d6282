package twins

import (
	"time"

	"github.com/kantofw/kanto/services/internal/ditto"
)

// Ditto response statuses.
const (
	statusOK        = 200
	statusCreated   = 201
	statusNoContent = 204
)

// command is a parsed local twin command.
type command struct {
	env     *ditto.Envelope
	topic   ditto.Topic
	thingID string
	tgt     target
}

// result is what applying a command gives: the response (status and value,
// or an error), the event to publish and the record to store.
type result struct {
	status   int
	value    any
	hasValue bool
	err      *thingError
	event    string // created, modified, deleted or ""
	invalid  bool   // the value could not be parsed: the command is not forwarded

	write  bool    // store rec
	rec    *record // the thing after the command
	remove bool    // the thing was deleted
	// provisioned is set when the thing was created by auto-provisioning
	// before the command ran: a "created" event is due first.
	provisioned bool
}

func fail(e *thingError) result { return result{err: e} }

func invalid(err error) result { return result{err: errJSONInvalid(err), invalid: true} }

// apply runs c against cur (nil when the thing does not exist). It never
// changes cur; a new record comes back in the result.
func apply(cur *record, c *command, now time.Time, autoProvision bool) result {
	if c.tgt.scope == scopeThing {
		return applyThing(cur, c, now)
	}
	var provisioned bool
	if cur == nil {
		if !autoProvision {
			return fail(errThingNotFound(c.thingID))
		}
		cur = newThing(c.thingID, now)
		provisioned = true
	}
	rec := cur.clone()
	var r result
	switch c.tgt.scope {
	case scopeFeatures:
		r = applyFeatures(rec, c, now)
	case scopeFeature:
		r = applyFeature(rec, c, now)
	case scopeProperties:
		r = applyProperties(rec, c, now)
	case scopeProperty:
		r = applyProperty(rec, c, now)
	}
	if provisioned {
		r.provisioned = true
		if !r.write {
			r.write, r.rec = true, cur
		}
	}
	return r
}

func applyThing(cur *record, c *command, now time.Time) result {
	id := c.thingID
	switch c.topic.Action {
	case "retrieve":
		if cur == nil {
			return fail(errThingNotFound(id))
		}
		v, err := selectFields(cur.Thing, c.env.Fields)
		if err != nil {
			return fail(errFieldSelector(err))
		}
		return result{status: statusOK, value: v, hasValue: true}
	case "delete":
		if cur == nil {
			return fail(errThingNotFound(id))
		}
		return result{status: statusNoContent, event: "deleted", remove: true, rec: cur}
	case "create", "modify":
		if c.topic.Action == "create" && cur != nil {
			return fail(errThingConflict(id))
		}
		v, err := decodeValue(c.env.Value)
		if err != nil {
			return invalid(err)
		}
		t, terr := checkThing(v, id)
		if terr != nil {
			return result{err: terr, invalid: terr.Error == "json.invalid"}
		}
		rec := &record{Thing: t}
		if cur != nil {
			rec = cur.clone()
			rec.Thing = t
		}
		rec.touch(now)
		rec.Dirty = rec.Revision
		// Features that existed before and are gone now are deletions to
		// sync; every remaining feature is unsynchronized.
		newFs, _ := rec.features()
		if cur != nil {
			oldFs, _ := cur.features()
			for f := range oldFs {
				if _, ok := newFs[f]; !ok {
					rec.featureRemoved(f)
				}
			}
		}
		for f := range newFs {
			rec.featureChanged(f)
		}
		if cur == nil {
			return result{status: statusCreated, value: t, hasValue: true, event: "created", write: true, rec: rec}
		}
		return result{status: statusNoContent, event: "modified", write: true, rec: rec}
	}
	return result{}
}

func applyFeatures(rec *record, c *command, now time.Time) result {
	fs, has := rec.features()
	switch c.topic.Action {
	case "retrieve":
		if !has {
			return fail(errFeaturesNotFound(c.thingID))
		}
		v, err := selectFields(fs, c.env.Fields)
		if err != nil {
			return fail(errFieldSelector(err))
		}
		return result{status: statusOK, value: v, hasValue: true}
	case "delete":
		if !has {
			return fail(errFeaturesNotFound(c.thingID))
		}
		delete(rec.Thing, "features")
		rec.touch(now)
		for f := range fs {
			rec.featureRemoved(f)
		}
		return result{status: statusNoContent, event: "deleted", write: true, rec: rec}
	case "modify":
		v, err := decodeValue(c.env.Value)
		if err != nil {
			return invalid(err)
		}
		nfs, err := checkFeatures(v)
		if err != nil {
			return invalid(err)
		}
		rec.Thing["features"] = nfs
		rec.touch(now)
		for f := range fs {
			if _, ok := nfs[f]; !ok {
				rec.featureRemoved(f)
			}
		}
		for f := range nfs {
			rec.featureChanged(f)
		}
		if !has {
			return result{status: statusCreated, event: "created", write: true, rec: rec}
		}
		return result{status: statusNoContent, event: "modified", write: true, rec: rec}
	}
	return result{}
}

func applyFeature(rec *record, c *command, now time.Time) result {
	id := c.tgt.feature
	f, has := rec.feature(id)
	switch c.topic.Action {
	case "retrieve":
		if !has {
			return fail(errFeatureNotFound(c.thingID, id))
		}
		v, err := selectFields(f, c.env.Fields)
		if err != nil {
			return fail(errFieldSelector(err))
		}
		return result{status: statusOK, value: v, hasValue: true}
	case "delete":
		if !has {
			return fail(errFeatureNotFound(c.thingID, id))
		}
		fs, _ := rec.features()
		delete(fs, id)
		rec.touch(now)
		rec.featureRemoved(id)
		return result{status: statusNoContent, event: "deleted", write: true, rec: rec}
	case "modify":
		v, err := decodeValue(c.env.Value)
		if err != nil {
			return invalid(err)
		}
		nf, err := checkFeature(v, id)
		if err != nil {
			return invalid(err)
		}
		fs, ok := rec.features()
		if !ok {
			fs = map[string]any{}
			rec.Thing["features"] = fs
		}
		fs[id] = nf
		rec.touch(now)
		rec.featureChanged(id)
		if !has {
			return result{status: statusCreated, event: "created", write: true, rec: rec}
		}
		return result{status: statusNoContent, event: "modified", write: true, rec: rec}
	}
	return result{}
}

func propsKey(desired bool) string {
	if desired {
		return "desiredProperties"
	}
	return "properties"
}

func applyProperties(rec *record, c *command, now time.Time) result {
	id, key := c.tgt.feature, propsKey(c.tgt.desired)
	f, has := rec.feature(id)
	if !has {
		return fail(errFeatureNotFound(c.thingID, id))
	}
	props, hasProps := f[key].(map[string]any)
	switch c.topic.Action {
	case "retrieve":
		if !hasProps {
			return fail(errPropertiesNotFound(c.thingID, id, c.tgt.desired))
		}
		v, err := selectFields(props, c.env.Fields)
		if err != nil {
			return fail(errFieldSelector(err))
		}
		return result{status: statusOK, value: v, hasValue: true}
	case "delete":
		if !hasProps {
			return fail(errPropertiesNotFound(c.thingID, id, c.tgt.desired))
		}
		delete(f, key)
		rec.touch(now)
		rec.featureChanged(id)
		return result{status: statusNoContent, event: "deleted", write: true, rec: rec}
	case "modify":
		v, err := decodeValue(c.env.Value)
		if err != nil {
			return invalid(err)
		}
		np, err := asObject(v, key)
		if err != nil {
			return invalid(err)
		}
		f[key] = np
		rec.touch(now)
		rec.featureChanged(id)
		if !hasProps {
			return result{status: statusCreated, event: "created", write: true, rec: rec}
		}
		return result{status: statusNoContent, event: "modified", write: true, rec: rec}
	}
	return result{}
}

func applyProperty(rec *record, c *command, now time.Time) result {
	id, key, ptr := c.tgt.feature, propsKey(c.tgt.desired), c.tgt.pointer
	f, has := rec.feature(id)
	if !has {
		return fail(errFeatureNotFound(c.thingID, id))
	}
	props, hasProps := f[key].(map[string]any)
	toks := pointerTokens(ptr)
	switch c.topic.Action {
	case "retrieve":
		if !hasProps {
			return fail(errPropertyNotFound(c.thingID, id, ptr, c.tgt.desired))
		}
		v, ok := pointerGet(props, toks)
		if !ok {
			return fail(errPropertyNotFound(c.thingID, id, ptr, c.tgt.desired))
		}
		if m, isObj := v.(map[string]any); isObj && c.env.Fields != "" {
			sel, err := selectFields(m, c.env.Fields)
			if err != nil {
				return fail(errFieldSelector(err))
			}
			v = sel
		}
		return result{status: statusOK, value: v, hasValue: true}
	case "delete":
		if !hasProps || !pointerDelete(props, toks) {
			return fail(errPropertyNotFound(c.thingID, id, ptr, c.tgt.desired))
		}
		if len(props) == 0 {
			delete(f, key) // as upstream: no empty properties object is kept
		}
		rec.touch(now)
		rec.featureChanged(id)
		return result{status: statusNoContent, event: "deleted", write: true, rec: rec}
	case "modify":
		v, err := decodeValue(c.env.Value)
		if err != nil {
			return invalid(err)
		}
		if !hasProps {
			props = map[string]any{}
			f[key] = props
		}
		pointerSet(props, toks, v)
		rec.touch(now)
		rec.featureChanged(id)
		// Upstream: 201 only when the whole properties object was absent.
		if !hasProps {
			return result{status: statusCreated, event: "created", write: true, rec: rec}
		}
		return result{status: statusNoContent, event: "modified", write: true, rec: rec}
	}
	return result{}
}

// selectFields applies a field selector to an object; "" keeps it whole.
func selectFields(doc map[string]any, fields string) (any, error) {
	if fields == "" {
		return doc, nil
	}
	sel, err := parseFields(fields)
	if err != nil {
		return nil, err
	}
	return project(doc, sel), nil
}
