package supervise

import (
	"errors"
	"fmt"
	"sort"
)

// Errors returned by Order and New; check them with errors.Is.
var (
	// ErrCycle means services wait on each other, so none could start.
	ErrCycle = errors.New("dependency cycle")
	// ErrUnknown means a service waits on a service that is not defined.
	ErrUnknown = errors.New("unknown service")
	// ErrDuplicate means two services share a name.
	ErrDuplicate = errors.New("duplicate service")
)

// Order returns the service names in a start order in which every service
// comes after all the services it lists in After. Among services whose
// dependencies are satisfied, the order of the input is kept, so the result
// is deterministic. Stopping uses the reverse order.
func Order(svcs []Service) ([]string, error) {
	index := make(map[string]int, len(svcs))
	for i, s := range svcs {
		if _, dup := index[s.Name]; dup {
			return nil, fmt.Errorf("%q: %w", s.Name, ErrDuplicate)
		}
		index[s.Name] = i
	}
	pending := make([]int, len(svcs)) // number of unmet dependencies
	users := make([][]int, len(svcs)) // reverse edges
	for i, s := range svcs {
		for _, d := range s.After {
			j, ok := index[d]
			if !ok {
				return nil, fmt.Errorf("%q waits on %q: %w", s.Name, d, ErrUnknown)
			}
			pending[i]++
			users[j] = append(users[j], i)
		}
	}
	var ready []int
	for i := range svcs {
		if pending[i] == 0 {
			ready = append(ready, i)
		}
	}
	out := make([]string, 0, len(svcs))
	for len(ready) > 0 {
		sort.Ints(ready)
		i := ready[0]
		ready = ready[1:]
		out = append(out, svcs[i].Name)
		for _, u := range users[i] {
			if pending[u]--; pending[u] == 0 {
				ready = append(ready, u)
			}
		}
	}
	if len(out) != len(svcs) {
		var stuck []string
		for i, s := range svcs {
			if pending[i] > 0 {
				stuck = append(stuck, s.Name)
			}
		}
		return nil, fmt.Errorf("among %v: %w", stuck, ErrCycle)
	}
	return out, nil
}
