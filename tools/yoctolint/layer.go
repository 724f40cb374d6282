// Package yoctolint checks the Yocto layer meta-kanto, kas.yml and their
// agreement with the code, without bitbake (which cannot run here). The
// checks are the package's tests: go test ./tools/yoctolint.
package yoctolint

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kantofw/kanto/tools/internal/bb"
)

// LayerDir is the layer, relative to the repository root.
const LayerDir = "meta-kanto"

// Machines are the boards the layer supports (one wic layout each).
var Machines = []string{"qemux86-64", "qemuarm64", "raspberrypi4-64"}

// Recipe is a parsed .bb or .bbappend with its required/included files.
type Recipe struct {
	Path   string // relative to the repository root
	Dir    string // absolute directory
	PN     string
	Append bool
	Main   *bb.File
	Vars   map[string]string // main file, then its includes
}

// LoadRecipes parses every recipe and bbappend of the layer.
func LoadRecipes(root string) ([]*Recipe, error) {
	var paths []string
	for _, pat := range []string{"recipes-*/*/*.bb", "recipes-*/*/*.bbappend"} {
		m, err := filepath.Glob(filepath.Join(root, LayerDir, pat))
		if err != nil {
			return nil, err
		}
		paths = append(paths, m...)
	}
	sort.Strings(paths)
	var out []*Recipe
	for _, p := range paths {
		r, err := loadRecipe(root, p)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func loadRecipe(root, path string) (*Recipe, error) {
	f, err := parseFile(path)
	if err != nil {
		return nil, err
	}
	rel, _ := filepath.Rel(root, path)
	base := filepath.Base(path)
	r := &Recipe{Path: rel, Dir: filepath.Dir(path), Main: f, Append: strings.HasSuffix(base, ".bbappend")}
	name := strings.TrimSuffix(strings.TrimSuffix(base, ".bbappend"), ".bb")
	r.PN, _, _ = strings.Cut(name, "_")
	files := []*bb.File{f}
	pre := BaseVars(root, r)
	for _, inc := range f.Includes {
		p := bb.Expand(inc, pre)
		if !filepath.IsAbs(p) {
			p = filepath.Join(r.Dir, p)
		}
		g, err := parseFile(p)
		if err != nil {
			return nil, err
		}
		files = append(files, g)
	}
	vars := BaseVars(root, r)
	for k, v := range bb.Vars(files...) {
		vars[k] = v
	}
	r.Vars = vars
	return r, nil
}

// BaseVars are the bitbake variables the layer's recipes rely on that come
// from bitbake.conf, layer.conf or the recipe's name.
func BaseVars(root string, r *Recipe) map[string]string {
	return map[string]string{
		"PN":                     r.PN,
		"BPN":                    r.PN,
		"THISDIR":                r.Dir,
		"KANTO_SRC_ROOT":         root,
		"KANTO_LAYERDIR":         filepath.Join(root, LayerDir),
		"bindir":                 "/usr/bin",
		"sysconfdir":             "/etc",
		"systemd_system_unitdir": "/usr/lib/systemd/system",
	}
}

func parseFile(path string) (*bb.File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	f, err := bb.Parse(fh)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Get returns a variable, expanded.
func (r *Recipe) Get(name string) string { return bb.Expand(r.Vars[name], r.Vars) }

// Matching returns the expanded values of name and of every variable whose
// name starts with name+":" (overrides such as SRC_URI:append:qemuarm64),
// with the override suffix as key ("" for name itself).
func (r *Recipe) Matching(name string) map[string]string {
	out := map[string]string{}
	for k := range r.Vars {
		if k == name {
			out[""] = r.Get(k)
		} else if rest, ok := strings.CutPrefix(k, name+":"); ok {
			out[rest] = r.Get(k)
		}
	}
	return out
}

// FilesPath is where bitbake looks for file:// entries of r: FILESEXTRAPATHS
// first, then ${BP}, ${BPN} and files next to the recipe.
func (r *Recipe) FilesPath() []string {
	var dirs []string
	for _, v := range r.Matching("FILESEXTRAPATHS") {
		for _, d := range strings.Split(v, ":") {
			if d = strings.TrimSpace(d); d != "" && !strings.Contains(d, "${") {
				dirs = append(dirs, d)
			}
		}
	}
	return append(dirs, filepath.Join(r.Dir, r.PN), filepath.Join(r.Dir, "files"))
}

// FindFile resolves a file:// path like bitbake's FILESPATH lookup.
func (r *Recipe) FindFile(name string) (string, bool) {
	if filepath.IsAbs(name) {
		_, err := os.Stat(name)
		return name, err == nil
	}
	for _, d := range r.FilesPath() {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	return "", false
}

// Words splits a variable into its whitespace-separated words.
func (r *Recipe) Words(name string) []string { return strings.Fields(r.Get(name)) }

// Raw returns the value of the last assignment to exactly name (e.g.
// "GOBUILDFLAGS:remove", which Vars folds into GOBUILDFLAGS) in the recipe
// file itself, unexpanded.
func (r *Recipe) Raw(name string) string {
	v := ""
	for _, a := range r.Main.Assignments {
		if a.Name == name && a.Flag == "" {
			v = a.Value
		}
	}
	return v
}
