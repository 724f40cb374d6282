package twins

import "strings"

// scope is what a command path addresses.
type scope int

const (
	scopeUnknown     scope = iota
	scopeUnsupported       // /attributes…, /definition, /policyId, /features/<f>/definition: forwarded, not applied
	scopeThing             // /
	scopeFeatures          // /features
	scopeFeature           // /features/<f>
	scopeProperties        // /features/<f>/properties or …/desiredProperties
	scopeProperty          // /features/<f>/properties/<pointer> or …/desiredProperties/<pointer>
)

// target is a parsed command path.
type target struct {
	scope   scope
	feature string
	desired bool   // desiredProperties rather than properties
	pointer string // JSON pointer inside the properties, starting with "/"
}

// parsePath splits a Ditto thing path the way upstream does.
func parsePath(p string) target {
	switch {
	case p == "/":
		return target{scope: scopeThing}
	case p == "/attributes", strings.HasPrefix(p, "/attributes/"), p == "/definition", p == "/policyId":
		return target{scope: scopeUnsupported}
	case p == "/features":
		return target{scope: scopeFeatures}
	}
	rest, ok := strings.CutPrefix(p, "/features/")
	if !ok {
		return target{}
	}
	f, rest, more := strings.Cut(rest, "/")
	if f == "" {
		return target{}
	}
	if !more {
		return target{scope: scopeFeature, feature: f}
	}
	if rest == "definition" {
		return target{scope: scopeUnsupported, feature: f}
	}
	part, ptr, deeper := strings.Cut(rest, "/")
	var desired bool
	switch part {
	case "properties":
	case "desiredProperties":
		desired = true
	default:
		return target{}
	}
	if !deeper {
		return target{scope: scopeProperties, feature: f, desired: desired}
	}
	if ptr == "" {
		return target{}
	}
	return target{scope: scopeProperty, feature: f, desired: desired, pointer: "/" + ptr}
}

// pointerTokens splits a JSON pointer ("/a/b~1c") into unescaped tokens.
func pointerTokens(ptr string) []string {
	parts := strings.Split(strings.TrimPrefix(ptr, "/"), "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts
}

// pointerGet follows tokens through nested objects (and arrays by index).
func pointerGet(doc any, tokens []string) (any, bool) {
	cur := doc
	for _, t := range tokens {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[t]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, ok := index(t, len(c))
			if !ok {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// pointerSet sets the value at tokens below obj, creating intermediate
// objects (and replacing non-object intermediates, as upstream's gabs does).
func pointerSet(obj map[string]any, tokens []string, v any) {
	cur := obj
	for _, t := range tokens[:len(tokens)-1] {
		next, ok := cur[t].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[t] = next
		}
		cur = next
	}
	cur[tokens[len(tokens)-1]] = v
}

// pointerDelete removes the value at tokens; false if it does not exist.
func pointerDelete(obj map[string]any, tokens []string) bool {
	cur := obj
	for _, t := range tokens[:len(tokens)-1] {
		next, ok := cur[t].(map[string]any)
		if !ok {
			return false
		}
		cur = next
	}
	last := tokens[len(tokens)-1]
	if _, ok := cur[last]; !ok {
		return false
	}
	delete(cur, last)
	return true
}

func index(t string, n int) (int, bool) {
	if t == "" || len(t) > 1 && t[0] == '0' {
		return 0, false
	}
	i := 0
	for _, r := range t {
		if r < '0' || r > '9' {
			return 0, false
		}
		i = i*10 + int(r-'0')
		if i > n {
			return 0, false
		}
	}
	return i, i < n
}
