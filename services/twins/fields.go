package twins

import (
	"errors"
	"fmt"
	"strings"
)

var errSelector = errors.New("bad field selector")

// parseFields turns a Ditto field selector ("thingId,features(a/properties,b)")
// into JSON pointer token lists.
func parseFields(s string) ([][]string, error) {
	var out [][]string
	var walk func(prefix []string, s string) error
	walk = func(prefix []string, s string) error {
		for _, part := range splitTop(s) {
			part = strings.TrimSpace(part)
			if part == "" {
				return fmt.Errorf("%w: empty field in %q", errSelector, s)
			}
			open := strings.IndexByte(part, '(')
			if open < 0 {
				if strings.ContainsAny(part, ")") {
					return fmt.Errorf("%w: unbalanced ')' in %q", errSelector, part)
				}
				out = append(out, append(append([]string(nil), prefix...), splitPath(part)...))
				continue
			}
			if !strings.HasSuffix(part, ")") || open == 0 {
				return fmt.Errorf("%w: %q", errSelector, part)
			}
			inner := part[open+1 : len(part)-1]
			if err := walk(append(append([]string(nil), prefix...), splitPath(part[:open])...), inner); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(nil, s); err != nil {
		return nil, err
	}
	return out, nil
}

func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(strings.Trim(p, "/"), "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// splitTop splits at commas outside parentheses; unbalanced input yields a
// part that parseFields rejects.
func splitTop(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return []string{s + "("} // forces an error
			}
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return []string{")" + s}
	}
	return append(parts, s[start:])
}

// project keeps only the selected fields of doc.
func project(doc map[string]any, fields [][]string) map[string]any {
	out := map[string]any{}
	for _, toks := range fields {
		if len(toks) == 0 {
			continue
		}
		v, ok := pointerGet(doc, toks)
		if !ok {
			continue
		}
		pointerSet(out, toks, v)
	}
	return out
}
