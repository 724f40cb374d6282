package yoctolint

import (
	"bufio"
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kantofw/kanto/internal/testenv"
	"github.com/kantofw/kanto/tools/internal/gomodsrc"
)

const builtinsFile = "services/cmd/kanto/builtins.go"

// builtin is one command of the multi-call binary.
type builtin struct {
	Name string
	Pkg  string // import path of the package providing its Main
}

// parseBuiltins reads the keys of the commands map and the package of each
// command's main function.
func parseBuiltins(t *testing.T, root string) []builtin {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(root, builtinsFile), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	imports := map[string]string{}
	for _, im := range f.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		name := filepath.Base(p)
		if im.Name != nil {
			name = im.Name.Name
		}
		imports[name] = p
	}
	var out []builtin
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "commands" || len(vs.Values) != 1 {
			return true
		}
		lit, ok := vs.Values[0].(*ast.CompositeLit)
		if !ok {
			t.Fatalf("%s: commands is not a map literal", builtinsFile)
		}
		for _, el := range lit.Elts {
			kv := el.(*ast.KeyValueExpr)
			key, ok := kv.Key.(*ast.BasicLit)
			if !ok {
				t.Fatalf("%s: a command key is not a string literal", builtinsFile)
			}
			b := builtin{}
			b.Name, _ = strconv.Unquote(key.Value)
			if cl, ok := kv.Value.(*ast.CompositeLit); ok {
				for _, f := range cl.Elts {
					fkv, ok := f.(*ast.KeyValueExpr)
					if !ok || fkv.Key.(*ast.Ident).Name != "main" {
						continue
					}
					if sel, ok := fkv.Value.(*ast.SelectorExpr); ok {
						if x, ok := sel.X.(*ast.Ident); ok {
							b.Pkg = imports[x.Name]
						}
					}
				}
			}
			out = append(out, b)
		}
		return false
	})
	return out
}

// configFlag finds the flag name a service package passes to config.Load
// (its -configFile equivalent), or "".
func configFlag(t *testing.T, root, pkg string) string {
	t.Helper()
	dir := filepath.Join(root, strings.TrimPrefix(pkg, "github.com/kantofw/kanto/"))
	fset := token.NewFileSet()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	flag := ""
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", p, err)
		}
		{
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) != 4 {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "Load" {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "config" {
					return true
				}
				if lit, ok := call.Args[2].(*ast.BasicLit); ok {
					flag, _ = strconv.Unquote(lit.Value)
				}
				return true
			})
		}
	}
	return flag
}

// notifyPending are services whose code does not notify systemd yet, with
// the reason; their units are Type=simple without WatchdogSec. An entry
// fails the test once the service notifies, so the unit catches up.
var notifyPending = map[string]string{}

// notifies reports whether a service package (non-test files) creates a
// systemd notifier.
func notifies(t *testing.T, root, pkg string) bool {
	t.Helper()
	dir := filepath.Join(root, strings.TrimPrefix(pkg, "github.com/kantofw/kanto/"))
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		if bytes.Contains(readFile(t, p), []byte("lifecycle.NewNotifier(")) {
			return true
		}
	}
	return false
}

// unitKeys reads "Key=Value" lines of a unit (all sections, later wins,
// repeated keys joined with spaces).
func unitKeys(data []byte) map[string]string {
	keys := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "[") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		if old, ok := keys[k]; ok {
			v = old + " " + v
		}
		keys[k] = v
	}
	return keys
}

// TestServicesPackaged: every command of the binary is classified in the
// kanto recipe, and every service has its package, symlink, unit and config,
// with a unit that runs it under systemd's watchdog with the config flag the
// service really parses.
func TestServicesPackaged(t *testing.T) {
	root := repoRoot(t)
	r := recipe(t, "kanto")
	services := r.Words("KANTO_SERVICES")
	clis := r.Words("KANTO_CLIS")
	subs := r.Words("KANTO_SUBCOMMANDS")
	packages := r.Words("PACKAGE_BEFORE_PN")
	builtins := parseBuiltins(t, root)
	inBinary := map[string]builtin{}
	for _, b := range builtins {
		inBinary[b.Name] = b
		if !contains(services, b.Name) && !contains(clis, b.Name) && !contains(subs, b.Name) {
			t.Errorf("command %q of %s is not in KANTO_SERVICES, KANTO_CLIS or KANTO_SUBCOMMANDS of meta-kanto/recipes-kanto/kanto/kanto.bb: "+
				"a service needs a package, a unit and a config there", b.Name, builtinsFile)
		}
	}
	systemdPkgs := r.Words("SYSTEMD_PACKAGES")
	for _, cmd := range services {
		t.Run(cmd, func(t *testing.T) {
			short := strings.TrimPrefix(cmd, "kanto-")
			pkg := "kanto-" + short
			unit := cmd + ".service"
			conf := "/etc/kanto/" + short + ".json"
			if !contains(packages, pkg) || !contains(systemdPkgs, pkg) {
				t.Errorf("package %s missing from PACKAGE_BEFORE_PN or SYSTEMD_PACKAGES", pkg)
			}
			if got := r.Get("SYSTEMD_SERVICE:" + pkg); got != unit {
				t.Errorf("SYSTEMD_SERVICE:%s = %q, want %q", pkg, got, unit)
			}
			files := strings.Fields(r.Get("FILES:" + pkg))
			for _, f := range []string{"/usr/bin/" + cmd, "/usr/lib/systemd/system/" + unit, conf} {
				if !contains(files, f) {
					t.Errorf("FILES:%s lacks %s", pkg, f)
				}
			}
			if !contains(strings.Fields(r.Get("CONFFILES:"+pkg)), conf) {
				t.Errorf("CONFFILES:%s lacks %s", pkg, conf)
			}
			for _, f := range []string{unit, short + ".json"} {
				if !strings.Contains(r.Get("SRC_URI"), "file://"+f) {
					t.Errorf("SRC_URI lacks file://%s", f)
				}
			}
			path, ok := r.FindFile(unit)
			if !ok {
				t.Fatalf("unit %s not found", unit)
			}
			keys := unitKeys(readFile(t, path))
			flag := "configFile"
			if b, ok := inBinary[cmd]; ok && b.Pkg != "" {
				if f := configFlag(t, root, b.Pkg); f != "" {
					flag = f
				}
				// Type=notify: a service that never sends READY=1 is
				// killed by systemd after TimeoutStartSec.
				switch n := notifies(t, root, b.Pkg); {
				case !n && notifyPending[cmd] == "":
					t.Errorf("%s (package %s) never uses lifecycle.NewNotifier: under Type=notify systemd would "+
						"kill it after TimeoutStartSec; call Ready and Watchdog (services/internal/lifecycle)", cmd, b.Pkg)
				case n && notifyPending[cmd] != "":
					t.Errorf("%s notifies systemd now: make its unit Type=notify with WatchdogSec and drop it from notifyPending", cmd)
				}
			} else {
				t.Logf("%s is not (yet) a command of %s: checking its unit against -configFile", cmd, builtinsFile)
			}
			exec := strings.Fields(keys["ExecStart"])
			if len(exec) != 3 || exec[0] != "/usr/bin/"+cmd || strings.TrimLeft(exec[1], "-") != flag || exec[2] != conf {
				t.Errorf("ExecStart = %q, want \"/usr/bin/%s -%s %s\"", keys["ExecStart"], cmd, flag, conf)
			}
			wantType := "notify"
			if why := notifyPending[cmd]; why != "" {
				wantType = "simple"
				t.Logf("%s: Type=simple without watchdog: %s", unit, why)
			}
			for k, want := range map[string]string{"Type": wantType, "Restart": "always", "StateDirectory": "kanto/" + short} {
				if keys[k] != want {
					t.Errorf("%s=%q, want %q", k, keys[k], want)
				}
			}
			if (keys["WatchdogSec"] == "") == (wantType == "notify") {
				t.Errorf("WatchdogSec=%q with Type=%s: a watchdog needs Type=notify, and every notify service has one", keys["WatchdogSec"], wantType)
			}
			for _, dep := range []string{"mosquitto.service"} {
				if !strings.Contains(keys["After"], dep) {
					t.Errorf("After=%q lacks %s", keys["After"], dep)
				}
			}
			if short == "container-management" && (!strings.Contains(keys["After"], "containerd.service") || !strings.Contains(keys["Requires"], "containerd.service")) {
				t.Error("container-management must be ordered after and require containerd.service")
			}
		})
	}
	for _, cli := range clis {
		found := false
		for _, p := range packages {
			if contains(strings.Fields(r.Get("FILES:"+p)), "/usr/bin/"+cli) {
				found = true
			}
		}
		if !found {
			t.Errorf("the symlink /usr/bin/%s is in no package's FILES", cli)
		}
	}
}

// goListMainDirs lists the directories of the main module's packages that
// pkg depends on.
func goListMainDirs(root, pkg string) ([]string, error) {
	cmd := exec.Command("go", "list", "-e", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", pkg)
	cmd.Dir = root
	// Never -mod=mod: the checkout is shared, go.mod and go.sum must not change.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, errors.New(string(ee.Stderr))
		}
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// TestGoModsMatchGoSum: the gomod:// list of the kanto recipe names exactly
// the module versions of go.sum, with the checksums of the files the module
// proxy serves (compared where the local module cache has them).
func TestGoModsMatchGoSum(t *testing.T) {
	root := repoRoot(t)
	sum, err := os.Open(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	defer sum.Close()
	want, err := gomodsrc.ParseGoSum(sum)
	if err != nil {
		t.Fatal(err)
	}
	inc, err := os.Open(filepath.Join(root, LayerDir, "recipes-kanto/kanto/kanto-go-mods.inc"))
	if err != nil {
		t.Fatal(err)
	}
	defer inc.Close()
	got, err := gomodsrc.ParseInc(inc)
	if err != nil {
		t.Fatal(err)
	}
	gotKeys := map[string]gomodsrc.Entry{}
	for _, e := range got {
		gotKeys[e.Key()] = e
	}
	wantKeys := map[string]bool{}
	for _, e := range want {
		wantKeys[e.Key()] = true
		if _, ok := gotKeys[e.Key()]; !ok {
			t.Errorf("go.sum has %s, kanto-go-mods.inc does not: run go run ./tools/yoctogen", e.Key())
		}
	}
	for _, e := range got {
		if !wantKeys[e.Key()] {
			t.Errorf("kanto-go-mods.inc has %s, go.sum does not: run go run ./tools/yoctogen", e.Key())
		}
		if len(e.SHA256) != 64 {
			t.Errorf("%s: sha256sum %q", e.Key(), e.SHA256)
		}
	}
	modcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, e := range got {
		sum, err := gomodsrc.Checksum(strings.TrimSpace(string(modcache)), e)
		if errors.Is(err, gomodsrc.ErrNotCached) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		checked++
		if sum != e.SHA256 {
			t.Errorf("%s: sha256sum %s, module cache has %s", e.Key(), e.SHA256, sum)
		}
	}
	t.Logf("%d entries, %d checksums compared with the module cache", len(got), checked)
}

// TestUnitsVerify runs systemd-analyze verify on every unit the layer ships.
// ExecStart binaries are replaced by stubs in a copy of the unit, so the
// check is about the unit, not about this host.
func TestUnitsVerify(t *testing.T) {
	sa := testenv.LookPath(t, "systemd-analyze")
	tmp := t.TempDir()
	for _, r := range recipes(t) {
		for k, v := range r.Vars {
			if !strings.HasPrefix(k, "SYSTEMD_SERVICE:") {
				continue
			}
			for _, unit := range strings.Fields(bbExpand(r, v)) {
				t.Run(unit, func(t *testing.T) {
					path, ok := r.FindFile(unit)
					if !ok {
						t.Fatalf("%s (SYSTEMD_SERVICE of %s) not found", unit, r.Path)
					}
					data := readFile(t, path)
					stubDir := filepath.Join(tmp, "bin")
					if err := os.MkdirAll(stubDir, 0o755); err != nil {
						t.Fatal(err)
					}
					keys := unitKeys(data)
					exe := strings.Fields(keys["ExecStart"])
					if len(exe) == 0 {
						t.Fatal("no ExecStart")
					}
					stub := filepath.Join(stubDir, filepath.Base(exe[0]))
					if err := os.WriteFile(stub, []byte("#!/bin/sh\n"), 0o755); err != nil {
						t.Fatal(err)
					}
					copyDir := filepath.Join(tmp, "units")
					if err := os.MkdirAll(copyDir, 0o755); err != nil {
						t.Fatal(err)
					}
					copyPath := filepath.Join(copyDir, unit)
					patched := bytes.ReplaceAll(data, []byte("ExecStart="+exe[0]), []byte("ExecStart="+stub))
					if err := os.WriteFile(copyPath, patched, 0o644); err != nil {
						t.Fatal(err)
					}
					cmd := exec.Command(sa, "verify", copyPath)
					out, err := cmd.CombinedOutput()
					text := strings.TrimSpace(string(out))
					for _, dep := range []string{"mosquitto.service", "containerd.service"} {
						if strings.Contains(text, "Unit "+dep+" not found") {
							testenv.Missing(t, dep+" not installed on this host (Debian packages mosquitto, containerd)")
						}
					}
					if err != nil || text != "" {
						t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, text)
					}
				})
			}
		}
	}
}

func bbExpand(r *Recipe, v string) string {
	return strings.NewReplacer("${PN}", r.PN, "${BPN}", r.PN).Replace(v)
}
