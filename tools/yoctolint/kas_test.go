package yoctolint

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kantofw/kanto/internal/testenv"
)

// kasScript validates a kas file against the installed kas's schema and
// prints the merged configuration (includes resolved) as JSON. It uses the
// API of Debian 12's kas 3.1, which newer kas versions keep.
const kasScript = `
import json, sys
from kas.includehandler import IncludeHandler, load_config
load_config(sys.argv[1])
cfg, missing = IncludeHandler([sys.argv[1]], sys.argv[2]).get_config()
if missing:
    sys.exit("missing repos for includes: %s" % missing)
json.dump(cfg, sys.stdout)
`

type kasRepo struct {
	URL     *string        `json:"url"`
	Refspec string         `json:"refspec"`
	Layers  map[string]any `json:"layers"`
}

type kasConfig struct {
	Header struct {
		Version int `json:"version"`
	} `json:"header"`
	Machine string              `json:"machine"`
	Distro  string              `json:"distro"`
	Target  any                 `json:"target"`
	Repos   map[string]*kasRepo `json:"repos"`
}

// unpinned are the repositories kas.yml may not pin to a commit yet, with
// the reason (also written in kas.yml). Remove an entry once it is pinned.
var unpinned = map[string]string{
	"meta-raspberrypi": "no commit of its wrynose branch was obtainable when the overlay was written",
}

var sha1RE = regexp.MustCompile(`^[0-9a-f]{40}$`)

func TestKasFiles(t *testing.T) {
	root := repoRoot(t)
	python := testenv.LookPath(t, "/usr/bin/python3")
	if err := exec.Command(python, "-c", "import kas.includehandler").Run(); err != nil {
		testenv.Missing(t, "Debian's kas is not installed (apt-get install kas)")
	}
	overlays, err := filepath.Glob(filepath.Join(root, "images/kas/*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	machines := map[string]bool{}
	for _, path := range append([]string{filepath.Join(root, "kas.yml")}, overlays...) {
		rel, _ := filepath.Rel(root, path)
		t.Run(rel, func(t *testing.T) {
			cmd := exec.Command(python, "-c", kasScript, path, root)
			cmd.Dir = root
			out, err := cmd.Output()
			if err != nil {
				var stderr string
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = string(ee.Stderr)
				}
				t.Fatalf("kas rejects %s: %v\n%s", rel, err, stderr)
			}
			var cfg kasConfig
			if err := json.Unmarshal(out, &cfg); err != nil {
				t.Fatal(err)
			}
			checkKasConfig(t, cfg)
			machines[cfg.Machine] = true
		})
	}
	for _, m := range Machines {
		if !machines[m] {
			t.Errorf("no kas configuration builds machine %s", m)
		}
	}
}

func checkKasConfig(t *testing.T, cfg kasConfig) {
	t.Helper()
	if cfg.Header.Version < 1 || cfg.Header.Version > 12 {
		t.Errorf("header version %d: Debian's kas 3.1 reads 1 to 12", cfg.Header.Version)
	}
	if cfg.Distro != "kanto" {
		t.Errorf("distro %q, want kanto", cfg.Distro)
	}
	targets := []string{}
	switch v := cfg.Target.(type) {
	case string:
		targets = append(targets, v)
	case []any:
		for _, x := range v {
			targets = append(targets, x.(string))
		}
	}
	if !slices.Contains(targets, "kanto-image") {
		t.Errorf("targets %v lack kanto-image", targets)
	}
	if !slices.Contains(Machines, cfg.Machine) {
		t.Errorf("machine %q is not one of %v", cfg.Machine, Machines)
	}
	needLayers := map[string][]string{
		"kanto":               {"meta-kanto"},
		"bitbake":             {},
		"openembedded-core":   {"meta"},
		"meta-openembedded":   {"meta-oe", "meta-python", "meta-networking", "meta-filesystems"},
		"meta-virtualization": {"."},
	}
	if cfg.Machine == "raspberrypi4-64" {
		needLayers["meta-raspberrypi"] = []string{"."}
	}
	for name, layers := range needLayers {
		r, ok := cfg.Repos[name]
		if !ok || r == nil {
			t.Errorf("repo %s missing", name)
			continue
		}
		for _, l := range layers {
			if _, ok := r.Layers[l]; !ok {
				t.Errorf("repo %s: layer %s not enabled", name, l)
			}
		}
	}
	for name, r := range cfg.Repos {
		if r == nil || r.URL == nil {
			continue // the repository holding the kas file
		}
		if strings.Contains(name, "poky") || strings.Contains(*r.URL, "/poky") {
			t.Errorf("repo %s: poky has no wrynose branch; use bitbake and openembedded-core", name)
		}
		switch {
		case sha1RE.MatchString(r.Refspec):
		case unpinned[name] != "":
			t.Logf("repo %s follows %q, not a commit: %s", name, r.Refspec, unpinned[name])
		default:
			t.Errorf("repo %s: refspec %q is not a full commit id", name, r.Refspec)
		}
	}
}
