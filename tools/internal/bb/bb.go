// Package bb reads the subset of bitbake's metadata syntax that the layer
// lint needs: variable assignments (with operators, flags and overrides),
// inherit/require/include lines, and function bodies. It does not evaluate
// inline Python (${@...}); Expand leaves such references as they are.
package bb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// ErrSyntax marks a line the reader does not understand.
var ErrSyntax = errors.New("bitbake syntax error")

// Assignment is one "NAME[flag] op "value"" line.
type Assignment struct {
	Name  string // with overrides, e.g. "RDEPENDS:${PN}" or "GOBUILDFLAGS:remove"
	Flag  string // "" unless NAME[flag]
	Op    string // =, ?=, ??=, :=, +=, =+, .=, =.
	Value string
	Line  int
}

// Func is a shell or Python function definition.
type Func struct {
	Name   string
	Python bool
	Body   string
	Line   int
}

// File is a parsed .bb, .bbappend, .inc, .bbclass or .conf file.
type File struct {
	Assignments []Assignment
	Inherits    []string
	Includes    []string // require and include targets, unexpanded
	Funcs       []Func
}

var (
	assignRE = regexp.MustCompile(`^(?:export\s+)?([A-Za-z0-9_${}@./+~:-]+?)(?:\[([A-Za-z0-9_.-]+)\])?\s*(\?\?=|\?=|:=|\+=|=\+|\.=|=\.|=)\s*(.*)$`)
	funcRE   = regexp.MustCompile(`^(?:(python|fakeroot)\s+)?(?:fakeroot\s+)?([A-Za-z0-9_${}.:-]*)\s*\(\)\s*\{\s*$`)
	exportRE = regexp.MustCompile(`^export\s+[A-Za-z0-9_]+$`)
)

// Parse reads one metadata file.
func Parse(r io.Reader) (*File, error) {
	f := &File{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	n := 0
	var fn *Func
	var body strings.Builder
	var pending strings.Builder
	pendingLine := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if fn != nil {
			if strings.TrimRight(line, " \t") == "}" {
				fn.Body = body.String()
				f.Funcs = append(f.Funcs, *fn)
				fn = nil
				body.Reset()
				continue
			}
			body.WriteString(line)
			body.WriteByte('\n')
			continue
		}
		if pending.Len() == 0 {
			pendingLine = n
		}
		if strings.HasSuffix(line, "\\") {
			pending.WriteString(strings.TrimSuffix(line, "\\"))
			pending.WriteByte(' ')
			continue
		}
		pending.WriteString(line)
		stmt := strings.TrimSpace(pending.String())
		pending.Reset()
		if err := f.statement(stmt, pendingLine, &fn); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if fn != nil {
		return nil, fmt.Errorf("line %d: function %q not closed: %w", fn.Line, fn.Name, ErrSyntax)
	}
	if pending.Len() > 0 {
		return nil, fmt.Errorf("line %d: continuation at end of file: %w", pendingLine, ErrSyntax)
	}
	return f, nil
}

func (f *File) statement(stmt string, line int, fn **Func) error {
	if stmt == "" || strings.HasPrefix(stmt, "#") {
		return nil
	}
	if m := funcRE.FindStringSubmatch(stmt); m != nil {
		*fn = &Func{Name: m[2], Python: m[1] == "python", Line: line}
		return nil
	}
	fields := strings.Fields(stmt)
	switch fields[0] {
	case "inherit", "inherit_defer":
		f.Inherits = append(f.Inherits, fields[1:]...)
		return nil
	case "require", "include", "include_all":
		if len(fields) < 2 {
			return fmt.Errorf("line %d: %s without a file: %w", line, fields[0], ErrSyntax)
		}
		f.Includes = append(f.Includes, fields[1:]...)
		return nil
	case "addtask", "deltask", "addhandler", "EXPORT_FUNCTIONS", "unset":
		return nil
	}
	if exportRE.MatchString(stmt) {
		return nil
	}
	m := assignRE.FindStringSubmatch(stmt)
	if m == nil {
		return fmt.Errorf("line %d: %q: %w", line, stmt, ErrSyntax)
	}
	v := strings.TrimSpace(m[4])
	if len(v) < 2 || (v[0] != '"' && v[0] != '\'') || v[len(v)-1] != v[0] {
		return fmt.Errorf("line %d: value of %s is not quoted: %w", line, m[1], ErrSyntax)
	}
	f.Assignments = append(f.Assignments, Assignment{Name: m[1], Flag: m[2], Op: m[3], Value: v[1 : len(v)-1], Line: line})
	return nil
}

// Vars applies the assignments of files in order (later files win) and
// returns variable values. Flags are stored as "NAME[flag]". Names with
// :append/:prepend/:remove overrides are folded into the base name when it
// is set; other overrides (e.g. "FILES:kanto-cm") stay separate names.
func Vars(files ...*File) map[string]string {
	vars := map[string]string{}
	weak := map[string]bool{}
	for _, f := range files {
		for _, a := range f.Assignments {
			name := a.Name
			if a.Flag != "" {
				name += "[" + a.Flag + "]"
			}
			base, op := name, ""
			for _, s := range []string{":append", ":prepend", ":remove"} {
				if b, ok := strings.CutSuffix(name, s); ok {
					base, op = b, s
				}
			}
			switch op {
			case ":append":
				vars[base] += a.Value
				continue
			case ":prepend":
				vars[base] = a.Value + vars[base]
				continue
			case ":remove":
				var keep []string
				for _, w := range strings.Fields(vars[base]) {
					if !strings.Contains(" "+a.Value+" ", " "+w+" ") {
						keep = append(keep, w)
					}
				}
				vars[base] = strings.Join(keep, " ")
				continue
			}
			old, set := vars[name]
			switch a.Op {
			case "=", ":=":
				vars[name] = a.Value
				weak[name] = false
			case "?=":
				if !set || weak[name] {
					vars[name] = a.Value
					weak[name] = false
				}
			case "??=":
				if !set {
					vars[name] = a.Value
					weak[name] = true
				}
			case "+=":
				vars[name] = strings.TrimLeft(old+" "+a.Value, " ")
			case "=+":
				vars[name] = strings.TrimRight(a.Value+" "+old, " ")
			case ".=":
				vars[name] = old + a.Value
			case "=.":
				vars[name] = a.Value + old
			}
		}
	}
	return vars
}

var refRE = regexp.MustCompile(`\$\{([A-Za-z0-9_:.+-]+)\}`)

// Expand replaces ${NAME} references with values from vars, recursively.
// Unknown names and inline Python stay as they are.
func Expand(s string, vars map[string]string) string {
	for range 10 {
		out := refRE.ReplaceAllStringFunc(s, func(ref string) string {
			if v, ok := vars[ref[2:len(ref)-1]]; ok {
				return v
			}
			return ref
		})
		if out == s {
			return out
		}
		s = out
	}
	return s
}

// URI is one SRC_URI or LIC_FILES_CHKSUM entry: scheme://path;k=v;...
type URI struct {
	Scheme string
	Path   string
	Params map[string]string
}

// ParseURIs splits a URI list. Words without "://" and inline Python are
// ignored.
func ParseURIs(list string) []URI {
	var out []URI
	for _, w := range strings.Fields(StripPython(list)) {
		scheme, rest, ok := strings.Cut(w, "://")
		if !ok {
			continue
		}
		parts := strings.Split(rest, ";")
		u := URI{Scheme: scheme, Path: parts[0], Params: map[string]string{}}
		for _, p := range parts[1:] {
			k, v, _ := strings.Cut(p, "=")
			u.Params[k] = v
		}
		out = append(out, u)
	}
	return out
}

// StripPython removes inline Python expressions (${@...}) from s.
func StripPython(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "${@")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		depth, j := 0, i+1
		for ; j < len(s); j++ {
			if s[j] == '{' {
				depth++
			} else if s[j] == '}' {
				depth--
				if depth == 0 {
					break
				}
			}
		}
		if j >= len(s) {
			return b.String()
		}
		s = s[j+1:]
	}
}
