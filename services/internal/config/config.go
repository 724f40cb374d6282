// Package config loads a service's settings in Kanto's order: built-in
// defaults, then the JSON config file, then the flags given explicitly on the
// command line. Unknown JSON keys are ignored, as upstream does.
package config

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// ErrInvalid marks a config file or value that cannot be used.
var ErrInvalid = errors.New("invalid configuration")

// ErrNotFound marks a config file that does not exist.
var ErrNotFound = errors.New("config file not found")

// Decode parses JSON into dst. A syntax or type error names the file, line
// and column. Unknown keys are ignored. An empty or whitespace-only file is
// accepted and leaves dst unchanged.
func Decode(name string, data []byte, dst any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	err := json.Unmarshal(data, dst)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		// Offset counts the offending byte as read; point at it.
		line, col := position(data, max(se.Offset-1, 0))
		return fmt.Errorf("%s:%d:%d: %v: %w", name, line, col, se, ErrInvalid)
	case errors.As(err, &te):
		line, col := position(data, te.Offset)
		field := te.Field
		if field == "" {
			field = "value"
		}
		return fmt.Errorf("%s:%d:%d: %q must be %s, not JSON %s: %w", name, line, col, field, te.Type, te.Value, ErrInvalid)
	default:
		return fmt.Errorf("%s: %v: %w", name, err, ErrInvalid)
	}
}

// position converts a byte offset into a 1-based line and column.
func position(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// LoadFile reads and decodes a config file. A missing file wraps ErrNotFound
// so callers can warn and go on, as upstream does.
func LoadFile(path string, dst any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", path, ErrNotFound)
		}
		return fmt.Errorf("read config: %w", err)
	}
	return Decode(path, data, dst)
}

// Load parses args with fs, whose flags are bound to the fields of dst
// (already holding defaults). If the flag named fileFlag gives a file, it is
// decoded into dst and the flags given explicitly are applied again on top,
// so a flag always beats the file. A missing file is reported as ErrNotFound
// after the flags are applied; the caller decides whether that is fatal.
func Load(fs *flag.FlagSet, args []string, fileFlag string, dst any) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	file := ""
	if f := fs.Lookup(fileFlag); f != nil {
		file = f.Value.String()
	}
	if file == "" {
		return nil
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	ferr := LoadFile(file, dst)
	if ferr != nil && !errors.Is(ferr, ErrNotFound) {
		return ferr
	}
	// Re-apply only the flags that were given, in command-line order.
	again := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	again.SetOutput(fs.Output())
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			if l, ok := f.Value.(*StringList); ok {
				l.explicit = false
			}
			again.Var(f.Value, f.Name, f.Usage)
		} else {
			b, _ := f.Value.(interface{ IsBoolFlag() bool })
			again.Var(ignore{isBool: b != nil && b.IsBoolFlag()}, f.Name, f.Usage)
		}
	})
	if err := again.Parse(args); err != nil {
		return err
	}
	return ferr
}

// ignore swallows a flag that was not given the first time round; it keeps
// the flag's boolean-ness so the rest of the command line parses the same.
type ignore struct{ isBool bool }

func (ignore) String() string     { return "" }
func (ignore) Set(string) error   { return nil }
func (i ignore) IsBoolFlag() bool { return i.isBool }

// StringList is a repeatable flag (and a JSON string array). Values given on
// the command line replace the file's list rather than appending to it.
type StringList struct {
	Values   *[]string
	explicit bool
	// Split, when set, also splits each flag value on spaces (upstream's
	// alpn flag takes a space-separated string).
	Split bool
	// CSV, when set, reads each flag value as one line of comma-separated
	// values, as pflag's StringSliceVar does (upstream container
	// management's list flags): "a,b" gives two entries, double quotes keep
	// a comma inside an entry, spaces are kept, and an empty value gives no
	// entry. It takes precedence over Split.
	CSV bool
}

func (l *StringList) String() string {
	if l == nil || l.Values == nil {
		return ""
	}
	if l.CSV {
		var b strings.Builder
		w := csv.NewWriter(&b)
		_ = w.Write(*l.Values) // a strings.Builder does not fail
		w.Flush()
		return strings.TrimSuffix(b.String(), "\n")
	}
	return strings.Join(*l.Values, " ")
}

// Set appends v, clearing values that came from defaults or the file first.
func (l *StringList) Set(v string) error {
	var add []string
	switch {
	case l.CSV:
		if v != "" {
			r := csv.NewReader(strings.NewReader(v))
			r.FieldsPerRecord = -1
			rec, err := r.Read()
			if err != nil {
				return fmt.Errorf("comma-separated list %q: %v: %w", v, err, ErrInvalid)
			}
			add = rec
		}
	case l.Split:
		add = strings.Fields(v)
	default:
		add = []string{v}
	}
	if !l.explicit {
		*l.Values = nil
		l.explicit = true
	}
	*l.Values = append(*l.Values, add...)
	return nil
}
