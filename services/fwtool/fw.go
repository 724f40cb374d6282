package fwtool

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kantofw/kanto/board"
	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/firmware/install"
	"github.com/kantofw/kanto/firmware/slot"
	"github.com/kantofw/kanto/init/initstatus"
	"github.com/kantofw/kanto/ota"
	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/config"
)

// Defaults of the device-side commands.
const (
	DefaultSlots    = "/etc/kanto/firmware/slots.json"
	DefaultKeyring  = "/etc/kanto/firmware/keyring.pem"
	DefaultHooksDir = "/etc/kanto/board.d"
	DefaultCheckDir = "/etc/kanto/firmware/health.d"
)

// FwMain is `kanto fw <subcommand>`.
func FwMain(ctx context.Context, env *cli.Env, args []string) error {
	if len(args) == 0 {
		fwUsage(env.Stderr)
		return cli.Usagef("missing subcommand")
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "env":
		return envMain(env, rest)
	case "install", "status", "resume", "commit", "rollback", "reboot", "history":
		return agentMain(ctx, env, sub, rest)
	case "mark-bad", "mark-good":
		return markMain(env, sub, rest)
	case "agent":
		return daemonMain(ctx, env, rest)
	case "slots":
		return slotsMain(env, rest)
	case "identity":
		return identityMain(ctx, env, rest)
	case "help", "-h", "--help":
		fwUsage(env.Stdout)
		return nil
	}
	fwUsage(env.Stderr)
	return cli.Usagef("unknown subcommand %q", sub)
}

func fwUsage(w io.Writer) {
	fmt.Fprint(w, `usage: kanto fw <subcommand> [flags]

  env --grubenv FILE [KEY=VALUE ...]          print the env, or set pairs in one atomic write (KEY= deletes)
  env --uboot-config FW_ENV_CONFIG [KEY=VALUE ...]
  install --slots SLOTS_JSON BUNDLE_OR_URL    verify and stream a bundle into the inactive slot, arm it
  status --slots SLOTS_JSON [--json]          update state, booted slot, boot environment, slot records
  resume --slots SLOTS_JSON                   after boot: recover, run health checks, commit or roll back
  commit | rollback | reboot | history --slots SLOTS_JSON
  mark-bad | mark-good --slots SLOTS_JSON A|B one atomic env write (never the booted slot for mark-bad)
  agent --slots SLOTS_JSON [--broker URL]     daemon: resume + verify at start, local MQTT API (kanto/fw/...)
  slots --board NAME [--hooks DIR]            print the slots file of a board profile
  identity [--hooks DIR]                      print the hardware identity and its source

Schemes and formats: firmware/BOOTENV.md, firmware/FORMAT.md.
`)
}

func envMain(env *cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, "fw env")
	grub := fs.String("grubenv", "", "GRUB environment block file")
	uboot := fs.String("uboot-config", "", "fw_env.config naming the U-Boot environment copies")
	create := fs.Bool("create", false, "U-Boot: start from an empty environment when no copy is valid")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if (*grub == "") == (*uboot == "") {
		return cli.Usagef("fw env needs exactly one of --grubenv FILE or --uboot-config FILE")
	}
	var store bootenv.Store
	if *grub != "" {
		store = bootenv.NewGrubEnv(*grub)
	} else {
		u, err := bootenv.OpenUBootEnv(*uboot)
		if err != nil {
			return err
		}
		u.Create = *create
		store = u
	}
	if len(pos) == 0 {
		e, err := store.Read()
		if err != nil {
			return err
		}
		keys := make([]string, 0, len(e))
		for k := range e {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(env.Stdout, "%s=%s\n", k, e[k])
		}
		return nil
	}
	set := map[string]string{}
	for _, p := range pos {
		k, v, ok := splitPair(p)
		if !ok {
			return cli.Usagef("%q: want KEY=VALUE", p)
		}
		set[k] = v
	}
	return store.Write(set)
}

// agentFlags are the flags of the commands that go through the agent.
type agentFlags struct {
	slots, keyring, db, hooks, checkDir, level string
	bootIDFile, caCert                         string
	services, headers                          []string
	healthTimeout                              time.Duration
	reboot, jsonOut, quiet, skipIdentical      bool
	allowDowngrade                             bool
}

func (f *agentFlags) register(fs *flag.FlagSet, sub string) {
	fs.StringVar(&f.slots, "slots", DefaultSlots, "slots file (firmware/FORMAT.md §4)")
	fs.StringVar(&f.db, "db", "", "OTA database (default <stateDir>/ota.db)")
	fs.StringVar(&f.hooks, "hooks", DefaultHooksDir, "board hook executables (reboot, identity, ...)")
	fs.StringVar(&f.level, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.bootIDFile, "boot-id-file", "/proc/sys/kernel/random/boot_id", "file holding the current boot's id (tests and containers override it)")
	fs.BoolVar(&f.jsonOut, "json", false, "print the result as JSON")
	if sub == "install" || sub == "resume" {
		fs.StringVar(&f.caCert, "ca-cert", "", "extra CA certificates (PEM) trusted for HTTPS bundle downloads")
		fs.Var(&config.StringList{Values: &f.headers}, "header", "'Name: value' added to bundle download requests (repeatable)")
	}
	switch sub {
	case "install":
		fs.StringVar(&f.keyring, "keyring", DefaultKeyring, "keyring PEM the bundle must be signed for")
		fs.BoolVar(&f.reboot, "reboot", false, "reboot into the new slot when the install succeeds")
		fs.BoolVar(&f.skipIdentical, "skip-identical", false, "read the slot first and skip writing 1 MiB frames it already holds (less flash wear)")
		fs.BoolVar(&f.quiet, "q", false, "no progress bar")
		fs.BoolVar(&f.allowDowngrade, "allow-downgrade", false, "install even if the bundle is older than the running version and the slots file says downgrade refuse")
	case "resume":
		fs.StringVar(&f.checkDir, "check-dir", DefaultCheckDir, "directory of health check executables (exit 0 = healthy)")
		fs.Var(&config.StringList{Values: &f.services}, "service", "service that must be active (repeatable; init status file, else systemd)")
		fs.DurationVar(&f.healthTimeout, "health-timeout", 5*time.Minute, "time limit of all health checks")
		fs.BoolVar(&f.reboot, "reboot", true, "reboot into an installed slot found after a restart")
	}
}

func agentMain(ctx context.Context, env *cli.Env, sub string, args []string) error {
	fs := cli.NewFlagSet(env, "fw "+sub)
	var f agentFlags
	f.register(fs, sub)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	want := 0
	if sub == "install" {
		want = 1
	}
	if len(pos) != want {
		return cli.Usagef("fw %s: %d argument(s), want %d", sub, len(pos), want)
	}
	slots, err := slot.Load(f.slots)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.level)); err != nil {
		return cli.Usagef("--log-level %q", f.level)
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
	cfg := ota.Config{DBPath: f.db, Slots: slots, AutoReboot: f.reboot, HealthTimeout: f.healthTimeout, SkipIdentical: f.skipIdentical, AllowDowngrade: f.allowDowngrade}
	if cfg.DBPath == "" {
		cfg.DBPath = filepath.Join(slots.StateDir, "ota.db")
	}
	if sub == "install" {
		if cfg.Keyring, err = bundle.LoadKeyring(f.keyring); err != nil {
			return err
		}
	}
	hooks := &board.Hooks{Dir: f.hooks, Log: log}
	deps := ota.Deps{Log: log, Rebooter: hooks, BootID: f.bootID}
	if deps.HTTP, err = f.httpOptions(); err != nil {
		return err
	}
	if sub == "resume" {
		if deps.Checks, err = healthChecks(f); err != nil {
			return err
		}
	}
	if sub == "install" {
		pr := newProgress(env, "install", f.quiet)
		deps.Progress = func(p install.Progress) { pr.update(p.Written, p.Total) }
	}
	a, err := ota.New(cfg, deps)
	if err != nil {
		return err
	}
	defer a.Close()

	var rec ota.Record
	switch sub {
	case "status":
		st, err := a.Status()
		if err != nil {
			return err
		}
		return printStatus(env.Stdout, st, f.jsonOut)
	case "history":
		h, err := a.History()
		if err != nil {
			return err
		}
		if f.jsonOut {
			return json.NewEncoder(env.Stdout).Encode(h)
		}
		for _, t := range h {
			fmt.Fprintf(env.Stdout, "%s  %-11s -> %-11s %s\n", t.At.Format(time.RFC3339), t.From, t.To, t.Reason)
		}
		return nil
	case "install":
		rec, err = a.Install(ctx, pos[0])
	case "resume":
		rec, err = a.Resume(ctx)
	case "commit":
		rec, err = a.Commit(ctx)
	case "rollback":
		rec, err = a.Rollback(ctx)
	case "reboot":
		err = a.Reboot(ctx)
	}
	if err != nil {
		if errors.Is(err, ota.ErrBusy) {
			return &cli.ExitError{Code: 3, Err: err}
		}
		return verifyExit(err)
	}
	if sub != "reboot" {
		if rec2, err := a.Status(); err == nil {
			rec = rec2.Record
		}
		printRecord(env.Stdout, rec, f.jsonOut)
	}
	if rec.State == ota.StateFailed || rec.State == ota.StateRolledBack && sub == "resume" {
		return &cli.ExitError{Code: 1, Err: fmt.Errorf("update %s: %s", rec.State, rec.Error)}
	}
	return nil
}

// httpOptions builds the download options: extra CAs, request headers.
func (f *agentFlags) httpOptions() (install.HTTPOptions, error) {
	var o install.HTTPOptions
	if len(f.headers) > 0 {
		o.Header = http.Header{}
		for _, h := range f.headers {
			k, v, ok := strings.Cut(h, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return o, cli.Usagef("--header %q: want 'Name: value'", h)
			}
			o.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	if f.caCert != "" {
		pem, err := os.ReadFile(f.caCert)
		if err != nil {
			return o, err
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return o, fmt.Errorf("%s: no PEM certificate", f.caCert)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		o.Client = &http.Client{Transport: tr}
	}
	return o, nil
}

func (f *agentFlags) bootID() (string, error) {
	b, err := os.ReadFile(f.bootIDFile)
	return strings.TrimSpace(string(b)), err
}

func healthChecks(f agentFlags) ([]ota.HealthCheck, error) {
	var checks []ota.HealthCheck
	if len(f.services) > 0 {
		var st ota.ServiceStatus = ota.SystemdServices{}
		if _, err := os.Stat(initstatus.Path); err == nil {
			st = initstatus.Reader{}
		}
		checks = append(checks, ota.ServicesUp(st, f.services...))
	}
	scripts, err := ota.ScriptsDir(f.checkDir, f.healthTimeout)
	if err != nil {
		return nil, err
	}
	return append(checks, scripts...), nil
}

func printRecord(w io.Writer, r ota.Record, jsonOut bool) {
	if jsonOut {
		json.NewEncoder(w).Encode(r)
		return
	}
	fmt.Fprintf(w, "update: %s", r.State)
	if r.Version != "" {
		fmt.Fprintf(w, ", version %s", r.Version)
	}
	if r.Target != "" {
		fmt.Fprintf(w, ", slot %s -> %s", r.Previous, r.Target)
	}
	if r.Reason != "" {
		fmt.Fprintf(w, " (%s)", r.Reason)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "\nerror: %s", r.Error)
	}
	fmt.Fprintln(w)
}

func printStatus(w io.Writer, st ota.Status, jsonOut bool) error {
	if jsonOut {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printRecord(w, st.Record, false)
	fmt.Fprintf(w, "booted: %s\n", st.Booted)
	if st.Boot != nil {
		fmt.Fprintf(w, "boot order: %s (next boot: %s)\n", strings.Join(st.Boot.Order, " "), st.Boot.Primary())
	}
	for _, n := range []string{"A", "B"} {
		line := "slot " + n + ":"
		if st.Boot != nil {
			b := st.Boot.Slots[n]
			line += fmt.Sprintf(" bootable=%v trial=%v", b.Bootable, b.Trial)
		}
		if s, ok := st.Slots[n]; ok {
			line += fmt.Sprintf(" status=%s version=%s boots=%d", s.Status, s.Version, s.BootCount)
		}
		fmt.Fprintln(w, line)
	}
	for _, e := range st.Errors {
		fmt.Fprintf(w, "warning: %s\n", e)
	}
	return nil
}

func markMain(env *cli.Env, sub string, args []string) error {
	fs := cli.NewFlagSet(env, "fw "+sub)
	slotsPath := fs.String("slots", DefaultSlots, "slots file")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (pos[0] != "A" && pos[0] != "B") {
		return cli.Usagef("fw %s --slots SLOTS_JSON A|B", sub)
	}
	slots, err := slot.Load(*slotsPath)
	if err != nil {
		return err
	}
	scheme, _, err := slots.Scheme()
	if err != nil {
		return err
	}
	name := pos[0]
	if sub == "mark-good" {
		if err := scheme.Commit(name); err != nil {
			return err
		}
		return slots.UpdateStatus(name, func(s *slot.Status) { s.Status, s.CommittedAt = slot.StatusGood, time.Now().UTC() })
	}
	if booted, err := slots.Booted(); err == nil && booted == name {
		return fmt.Errorf("slot %s is booted: %w", name, slot.ErrBootedSlot)
	}
	if err := scheme.MarkBad(name); err != nil {
		return err
	}
	return slots.UpdateStatus(name, func(s *slot.Status) { s.Status = slot.StatusBad })
}

func slotsMain(env *cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, "fw slots")
	name := fs.String("board", "", "board profile: "+strings.Join(board.Names(), ", "))
	hooks := fs.String("hooks", DefaultHooksDir, "board hook executables")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *name == "" {
		return cli.Usagef("fw slots --board NAME")
	}
	p, err := board.Lookup(*name)
	if err != nil {
		return err
	}
	c, err := p.SlotsConfig(&board.Hooks{Dir: *hooks})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}

func identityMain(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, "fw identity")
	hooks := fs.String("hooks", DefaultHooksDir, "board hook executables")
	jsonOut := fs.Bool("json", false, "print id and source as JSON")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	id, err := (&board.Hooks{Dir: *hooks}).Identity(ctx)
	if err != nil {
		return err
	}
	if *jsonOut {
		return json.NewEncoder(env.Stdout).Encode(id)
	}
	fmt.Fprintf(env.Stdout, "%s\t%s\n", id.ID, id.Source)
	return nil
}
