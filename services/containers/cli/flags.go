package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	kcli "github.com/kantofw/kanto/services/internal/cli"
)

// flagSet wraps flag.FlagSet with short aliases (-n for --name) and a help
// listing in kanto-cm's style. Go's flag package accepts both -x and --x,
// so upstream's single-letter long flags (--t, --i, --e) work as is.
type flagSet struct {
	*flag.FlagSet
	short map[string]string // long -> short
	typ   map[string]string
	def   map[string]string
	given map[string]bool
	// help prints the help on stdout for -h/--help. Go's own usage
	// output is off: a bad flag gives one "Error: ..." line and no help.
	help func()
}

func newFlagSet(env *kcli.Env, name, _ string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, short: map[string]string{}, typ: map[string]string{}, def: map[string]string{}, given: map[string]bool{}}
}

func (f *flagSet) alias(v flag.Value, long, short, usage, typ, def string) {
	f.Var(v, long, usage)
	if short != "" {
		f.Var(v, short, usage)
		f.short[long] = short
	}
	f.typ[long], f.def[long] = typ, def
}

func (f *flagSet) String(p *string, long, short, def, usage string) {
	*p = def
	f.alias(&strVal{p}, long, short, usage, "string", def)
}

func (f *flagSet) Int(p *int, long, short string, def int, usage string) {
	*p = def
	f.alias(&intVal{p}, long, short, usage, "int", strconv.Itoa(def))
}

func (f *flagSet) Int32(p *int32, long, short string, def int32, usage string) {
	*p = def
	f.alias(&int32Val{p}, long, short, usage, "int32", strconv.FormatInt(int64(def), 10))
}

func (f *flagSet) Int64(p *int64, long, short string, def int64, usage string) {
	*p = def
	f.alias(&int64Val{p}, long, short, usage, "int", strconv.FormatInt(def, 10))
}

func (f *flagSet) Bool(p *bool, long, short string, def bool, usage string) {
	*p = def
	f.alias(&boolVal{p}, long, short, usage, "", "")
}

// StringSlice is a comma-separated, repeatable list (cobra's StringSlice).
func (f *flagSet) StringSlice(p *[]string, long, short, usage string) {
	f.alias(&sliceVal{p: p, split: true}, long, short, usage, "strings", "")
}

// StringArray is a repeatable list whose values are never split.
func (f *flagSet) StringArray(p *[]string, long, short, usage string) {
	f.alias(&sliceVal{p: p}, long, short, usage, "stringArray", "")
}

// parse parses args; with interspersed, flags may follow positional
// arguments (as with cobra), and "--" ends the flags.
func (f *flagSet) parse(args []string, interspersed bool) ([]string, error) {
	var pos []string
	for {
		if err := f.parseFlags(args); err != nil {
			return nil, err
		}
		rest := f.Args()
		if !interspersed || len(rest) == 0 {
			return append(pos, rest...), nil
		}
		// flag stops at "--" (consumed) or at a non-flag argument.
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseFlags is Parse with help on -h and upstream's (pflag's) wording
// for flag errors.
func (f *flagSet) parseFlags(args []string) error {
	err := f.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if f.help != nil {
			f.help()
		}
		return err
	}
	return f.flagError(err)
}

var (
	errUndefined = regexp.MustCompile(`^flag provided but not defined: -(.+)$`)
	errNoValue   = regexp.MustCompile(`^flag needs an argument: -(.+)$`)
	errBadValue  = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-([^:]+): (.*)$`)
)

// flagError rewords an error of Go's flag package as kanto-cm users know
// it: "unknown flag: --x", "unknown shorthand flag: 'x' in -x", "flag needs
// an argument: --name", "invalid argument "v" for "-t, --tail" flag: ...".
func (f *flagSet) flagError(err error) error {
	msg := err.Error()
	if m := errUndefined.FindStringSubmatch(msg); m != nil {
		if len(m[1]) == 1 {
			return fmt.Errorf("unknown shorthand flag: '%s' in -%s", m[1], m[1])
		}
		return fmt.Errorf("unknown flag: --%s", m[1])
	}
	if m := errNoValue.FindStringSubmatch(msg); m != nil {
		if f.isShort(m[1]) {
			return fmt.Errorf("flag needs an argument: '%s' in -%s", m[1], m[1])
		}
		return fmt.Errorf("flag needs an argument: --%s", m[1])
	}
	if m := errBadValue.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("invalid argument %q for %q flag: %s", m[1], f.label(m[2]), m[3])
	}
	return err
}

func (f *flagSet) isShort(name string) bool {
	for _, s := range f.short {
		if s == name {
			return true
		}
	}
	return false
}

// label is "-s, --long" or "--long" for a flag given by either name.
func (f *flagSet) label(name string) string {
	long := name
	for l, s := range f.short {
		if s == name {
			long = l
		}
	}
	if s := f.short[long]; s != "" {
		return "-" + s + ", --" + long
	}
	return "--" + long
}

// Changed reports whether the flag (or its alias) was given.
func (f *flagSet) Changed(long string) bool {
	found := false
	f.Visit(func(fl *flag.Flag) {
		if fl.Name == long || fl.Name == f.short[long] {
			found = true
		}
	})
	return found
}

// NFlags is how many flags were given.
func (f *flagSet) NFlagGiven() int { return f.NFlag() }

func (f *flagSet) printDefaults(w io.Writer) {
	var longs []string
	f.VisitAll(func(fl *flag.Flag) {
		if _, isLong := f.typ[fl.Name]; isLong {
			longs = append(longs, fl.Name)
		}
	})
	sort.Strings(longs)
	for _, l := range longs {
		fl := f.Lookup(l)
		head := "      --" + l
		if s := f.short[l]; s != "" {
			head = "  -" + s + ", --" + l
		}
		if t := f.typ[l]; t != "" {
			head += " " + t
		}
		usage := strings.ReplaceAll(fl.Usage, "\n", "\n"+strings.Repeat(" ", 8))
		if d := f.def[l]; d != "" && f.typ[l] != "" {
			usage += fmt.Sprintf(" (default %s)", quoteDef(f.typ[l], d))
		}
		fmt.Fprintf(w, "%s\n        %s\n", head, usage)
	}
	fmt.Fprintf(w, "  -h, --help\n        help for this command\n")
}

func quoteDef(typ, d string) string {
	if typ == "string" {
		return strconv.Quote(d)
	}
	return d
}

type strVal struct{ p *string }

func (v *strVal) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}
func (v *strVal) Set(s string) error { *v.p = s; return nil }

type intVal struct{ p *int }

func (v *intVal) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.Itoa(*v.p)
}
func (v *intVal) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, strconv.IntSize)
	if err != nil {
		return err
	}
	*v.p = int(n)
	return nil
}

type int32Val struct{ p *int32 }

func (v *int32Val) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatInt(int64(*v.p), 10)
}
func (v *int32Val) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, 32)
	if err != nil {
		return err
	}
	*v.p = int32(n)
	return nil
}

type int64Val struct{ p *int64 }

func (v *int64Val) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatInt(*v.p, 10)
}
func (v *int64Val) Set(s string) error {
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

type boolVal struct{ p *bool }

func (v *boolVal) String() string {
	if v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}
func (v *boolVal) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*v.p = b
	return nil
}
func (v *boolVal) IsBoolFlag() bool { return true }

type sliceVal struct {
	p     *[]string
	split bool
}

func (v *sliceVal) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}
func (v *sliceVal) Set(s string) error {
	if !v.split {
		*v.p = append(*v.p, s)
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		*v.p = append(*v.p, strings.TrimSpace(part))
	}
	return nil
}

// argCount checks a command's positional arguments. The messages are the
// ones upstream's kanto-cm prints for the same mistakes.
type argCount func(cmd string, args []string) error

// noArgs: the command takes no positional argument; a stray word is
// reported as an unknown subcommand.
func noArgs(cmd string, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unknown command %q for %q", args[0], "kanto-cm "+cmd)
	}
	return nil
}

// atMost allows up to n positional arguments.
func atMost(n int) argCount {
	return func(_ string, args []string) error {
		if len(args) > n {
			return fmt.Errorf("accepts at most %d arg(s), received %d", n, len(args))
		}
		return nil
	}
}
