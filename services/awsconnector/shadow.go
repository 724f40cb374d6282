package awsconnector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/kantofw/kanto/services/internal/ditto"
	"github.com/kantofw/kanto/services/internal/mqtt"
)

// mapper turns local Ditto twin commands into Device Shadow messages:
// root attributes to the classic shadow, every feature to a named shadow,
// a child thing's attributes and features to named shadows prefixed with
// the child's suffix.
type mapper struct {
	deviceID       string
	topicFilter    *regexp.Regexp
	payloadFilters []*regexp.Regexp
	cache          *shadowCache
}

// shadowTopic is the topic of op (update, delete, …) on a shadow; name ""
// is the classic shadow.
func shadowTopic(thing, name, op string) string {
	if name == "" {
		return "$aws/things/" + thing + "/shadow/" + op
	}
	return "$aws/things/" + thing + "/shadow/name/" + name + "/" + op
}

// shadowName names the shadow of a child's (or the root's, child "")
// attributes (feature "") or feature.
func shadowName(child, feature string) string {
	switch {
	case feature == "":
		return child
	case child == "":
		return feature
	}
	return child + ":" + feature
}

// eligible reports whether env is a twin command on the device's things
// that becomes shadow messages, and returns the child suffix.
func (m *mapper) eligible(env *ditto.Envelope) (t ditto.Topic, child string, ok bool) {
	t, err := ditto.ParseTopic(env.Topic)
	if err != nil || t.Group != "things" || env.Status != 0 || t.Channel != "twin" || t.Criterion != "commands" {
		return t, "", false
	}
	switch t.Action {
	case "create", "modify", "merge", "delete":
	default:
		return t, "", false
	}
	id := t.ThingID()
	if id == m.deviceID {
		return t, "", true
	}
	if c, ok := strings.CutPrefix(id, m.deviceID+":"); ok && c != "" {
		return t, c, true
	}
	return t, "", false
}

func pathTokens(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// toShadow maps env. ok is false when env is not a shadow message (it then
// goes to the cloud as an event). A shadow message may map to nothing
// (filtered, desired properties, deleting everything).
func (m *mapper) toShadow(env *ditto.Envelope) (msgs []mqtt.Message, ok bool, err error) {
	t, child, ok := m.eligible(env)
	if !ok {
		return nil, false, nil
	}
	if m.topicFilter != nil && m.topicFilter.MatchString(env.Topic) {
		return nil, true, nil
	}
	toks := pathTokens(env.Path)
	if t.Action == "delete" {
		return m.deletes(toks, child), true, nil
	}
	v, err := decodeJSON(env.Value)
	if err != nil {
		return nil, true, fmt.Errorf("%w: value of %s %s: %v", errMapping, env.Topic, env.Path, err)
	}
	var doc any = v
	for i := len(toks) - 1; i >= 0; i-- {
		doc = map[string]any{toks[i]: doc}
	}
	thing, isObj := doc.(map[string]any)
	if !isObj {
		return nil, true, fmt.Errorf("%w: the thing value is not an object", errMapping)
	}
	if !m.filter(thing) {
		return nil, true, nil
	}
	modify := t.Action == "modify"
	if a, ok := thing["attributes"]; ok && a == nil && t.Action == "merge" {
		// A merge patch removing all attributes removes their shadow.
		m.cache.remove(shadowName(child, ""))
		msgs = append(msgs, mqtt.Message{Topic: shadowTopic(m.deviceID, shadowName(child, ""), "delete"), Payload: []byte{}, QoS: 1})
	}
	if attrs, ok := thing["attributes"].(map[string]any); ok {
		name := shadowName(child, "")
		var scope []string
		if len(toks) > 1 && toks[0] == "attributes" {
			scope = toks[1:]
		}
		msgs = append(msgs, m.update(name, attrs, modify, scope, false))
	}
	features, _ := thing["features"].(map[string]any)
	for _, f := range slices.Sorted(maps.Keys(features)) {
		if features[f] == nil && t.Action == "merge" {
			// A merge patch removing a feature removes its shadow.
			m.cache.remove(shadowName(child, f))
			msgs = append(msgs, mqtt.Message{Topic: shadowTopic(m.deviceID, shadowName(child, f), "delete"), Payload: []byte{}, QoS: 1})
			continue
		}
		feat, ok := features[f].(map[string]any)
		if !ok {
			continue
		}
		doc := map[string]any{}
		if p, ok := feat["properties"].(map[string]any); ok {
			maps.Copy(doc, p)
		} else if _, has := feat["properties"]; has {
			return nil, true, fmt.Errorf("%w: properties of feature %s are not an object", errMapping, f)
		}
		if d, ok := feat["definition"]; ok {
			doc["definition"] = d
		}
		_, hasProps := feat["properties"]
		_, hasDef := feat["definition"]
		if !hasProps && !hasDef {
			continue // desired properties (or nothing) only: not mapped
		}
		var scope []string
		exceptDefinition := false
		if len(toks) >= 3 && toks[0] == "features" {
			switch toks[2] {
			case "properties":
				scope, exceptDefinition = toks[3:], len(toks) == 3
			case "definition":
				scope = []string{"definition"}
			}
		}
		msgs = append(msgs, m.update(shadowName(child, f), doc, modify, scope, exceptDefinition))
	}
	return msgs, true, nil
}

// update builds the update of one shadow. For modify (Ditto's replace) the
// keys the shadow holds under scope but the new document lacks are sent as
// null so they are removed; a nil scope is the whole document, and
// exceptDefinition keeps the feature definition (a properties modify).
func (m *mapper) update(name string, doc map[string]any, modify bool, scope []string, exceptDefinition bool) mqtt.Message {
	if modify {
		if cached := m.cache.current(name); cached != nil {
			c, n := any(cached), any(doc)
			for _, s := range scope {
				cm, _ := c.(map[string]any)
				nm, _ := n.(map[string]any)
				c, n = cm[s], nm[s]
			}
			cm, cok := c.(map[string]any)
			nm, nok := n.(map[string]any)
			if cok && nok {
				addNulls(cm, nm, exceptDefinition && len(scope) == 0)
			}
		}
	}
	m.cache.merge(name, doc)
	payload, _ := json.Marshal(map[string]any{"state": map[string]any{"reported": doc}})
	return mqtt.Message{Topic: shadowTopic(m.deviceID, name, "update"), Payload: payload, QoS: 1}
}

// addNulls sets to null in next the keys cached has and next lacks, in
// nested objects too. Arrays are values: AWS replaces them whole.
func addNulls(cached, next map[string]any, keepDefinition bool) {
	for k, cv := range cached {
		if keepDefinition && k == "definition" {
			continue
		}
		nv, ok := next[k]
		if !ok {
			next[k] = nil
			continue
		}
		cm, cok := cv.(map[string]any)
		nm, nok := nv.(map[string]any)
		if cok && nok {
			addNulls(cm, nm, false)
		}
	}
}

// deletes maps a delete command.
func (m *mapper) deletes(toks []string, child string) []mqtt.Message {
	nullAt := func(name string, rest []string) mqtt.Message {
		var v any
		for i := len(rest) - 1; i >= 0; i-- {
			v = map[string]any{rest[i]: v}
		}
		doc, _ := v.(map[string]any)
		m.cache.merge(name, doc)
		payload, _ := json.Marshal(map[string]any{"state": map[string]any{"reported": doc}})
		return mqtt.Message{Topic: shadowTopic(m.deviceID, name, "update"), Payload: payload, QoS: 1}
	}
	deleteShadow := func(name string) mqtt.Message {
		m.cache.remove(name)
		return mqtt.Message{Topic: shadowTopic(m.deviceID, name, "delete"), Payload: []byte{}, QoS: 1}
	}
	switch {
	case len(toks) == 0, len(toks) == 1 && toks[0] == "features":
		return nil // upstream: deleting everything maps to nothing
	case toks[0] == "attributes" && len(toks) == 1:
		return []mqtt.Message{deleteShadow(shadowName(child, ""))}
	case toks[0] == "attributes":
		return []mqtt.Message{nullAt(shadowName(child, ""), toks[1:])}
	case toks[0] != "features":
		return nil
	case len(toks) == 2:
		return []mqtt.Message{deleteShadow(shadowName(child, toks[1]))}
	}
	name := shadowName(child, toks[1])
	switch toks[2] {
	case "definition":
		return []mqtt.Message{nullAt(name, []string{"definition"})}
	case "properties":
		if len(toks) > 3 {
			return []mqtt.Message{nullAt(name, toks[3:])}
		}
		cached := m.cache.current(name)
		if cached == nil {
			// Nothing known of the shadow: clear its reported state.
			m.cache.remove(name)
			return []mqtt.Message{{Topic: shadowTopic(m.deviceID, name, "update"), Payload: []byte(`{"state":{"reported":null}}`), QoS: 1}}
		}
		doc := map[string]any{}
		for k := range cached {
			if k != "definition" {
				doc[k] = nil
			}
		}
		if len(doc) == 0 {
			return nil
		}
		m.cache.merge(name, doc)
		payload, _ := json.Marshal(map[string]any{"state": map[string]any{"reported": doc}})
		return []mqtt.Message{{Topic: shadowTopic(m.deviceID, name, "update"), Payload: payload, QoS: 1}}
	}
	return nil // desired properties are not mapped
}

// filter removes the leaves whose path matches a payload filter, and the
// containers that become empty; false when nothing is left.
func (m *mapper) filter(doc map[string]any) bool {
	if len(m.payloadFilters) == 0 {
		return true
	}
	return !prune(doc, "", m.payloadFilters)
}

// prune filters v in place and reports whether it became empty.
func prune(v any, path string, filters []*regexp.Regexp) (empty bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := path + "/" + k
			if isLeaf(e) {
				if matchAny(filters, p) {
					delete(x, k)
				}
				continue
			}
			if arr, ok := e.([]any); ok {
				if arr = pruneArray(arr, p, filters); len(arr) == 0 {
					delete(x, k)
				} else {
					x[k] = arr
				}
				continue
			}
			if prune(e, p, filters) {
				delete(x, k)
			}
		}
		return len(x) == 0
	}
	return false
}

func isLeaf(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		return len(x) == 0
	case []any:
		return false
	}
	return true
}

func matchAny(filters []*regexp.Regexp, p string) bool {
	for _, f := range filters {
		if f.MatchString(p) {
			return true
		}
	}
	return false
}

// pruneArray filters an array; its elements' paths use the index.
func pruneArray(arr []any, path string, filters []*regexp.Regexp) []any {
	out := arr[:0]
	for i, e := range arr {
		p := path + "/" + strconv.Itoa(i)
		if isLeaf(e) {
			if !matchAny(filters, p) {
				out = append(out, e)
			}
			continue
		}
		if sub, ok := e.([]any); ok {
			if s := pruneArray(sub, p, filters); len(s) > 0 {
				out = append(out, s)
			}
			continue
		}
		if !prune(e, p, filters) {
			out = append(out, e)
		}
	}
	return out
}

func decodeJSON(raw []byte) (any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("no value")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// shadowCache is what the connector believes each shadow's reported state
// is: its own updates, and AWS's update/accepted and delete/accepted.
// Unlike upstream's (lost on restart, so a modify after a restart left
// stale keys in the shadow), a shadow not known yet is fetched from AWS
// (…/get) before the first modify that needs it.
type shadowCache struct {
	mu      sync.Mutex
	reports map[string]map[string]any // shadow name ("" classic) -> reported
	known   map[string]bool           // fetched or written since the start
	// fetch gets a shadow's reported state from AWS (nil, nil when it does
	// not exist); nil while offline.
	fetch func(name string) (map[string]any, error)
}

func newShadowCache() *shadowCache {
	return &shadowCache{reports: map[string]map[string]any{}, known: map[string]bool{}}
}

func (c *shadowCache) setFetch(f func(name string) (map[string]any, error)) {
	c.mu.Lock()
	c.fetch = f
	c.mu.Unlock()
}

// current is get, fetching the shadow from AWS first when it is not known.
func (c *shadowCache) current(name string) map[string]any {
	c.mu.Lock()
	fetch, known := c.fetch, c.known[name]
	c.mu.Unlock()
	if !known && fetch != nil {
		if r, err := fetch(name); err == nil {
			c.mu.Lock()
			if !c.known[name] { // nothing written meanwhile
				if r != nil {
					c.reports[name] = r
				}
				c.known[name] = true
			}
			c.mu.Unlock()
		}
	}
	return c.get(name)
}

func (c *shadowCache) get(name string) map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reports[name]
	if r == nil {
		return nil
	}
	return deepCopy(r).(map[string]any)
}

// merge applies a reported update (null deletes) to the cache.
func (c *shadowCache) merge(name string, doc map[string]any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.known[name] = true
	r := c.reports[name]
	if r == nil {
		r = map[string]any{}
		c.reports[name] = r
	}
	mergeInto(r, deepCopy(doc).(map[string]any))
	if len(r) == 0 {
		delete(c.reports, name)
	}
}

// forget drops what is known of a shadow, so it is fetched again.
func (c *shadowCache) forget(name string) {
	c.mu.Lock()
	delete(c.known, name)
	delete(c.reports, name)
	c.mu.Unlock()
}

func (c *shadowCache) remove(name string) {
	c.mu.Lock()
	c.known[name] = true
	delete(c.reports, name)
	c.mu.Unlock()
}

func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		switch x := v.(type) {
		case nil:
			delete(dst, k)
		case map[string]any:
			d, ok := dst[k].(map[string]any)
			if !ok {
				d = map[string]any{}
				dst[k] = d
			}
			mergeInto(d, x)
			if len(d) == 0 {
				delete(dst, k)
			}
		default:
			dst[k] = v
		}
	}
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
