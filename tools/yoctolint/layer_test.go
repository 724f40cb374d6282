package yoctolint

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kantofw/kanto/tools/internal/bb"
)

func TestLayerConf(t *testing.T) {
	root := repoRoot(t)
	f, err := parseFile(filepath.Join(root, LayerDir, "conf/layer.conf"))
	if err != nil {
		t.Fatal(err)
	}
	vars := bb.Vars(f)
	coll := strings.TrimSpace(vars["BBFILE_COLLECTIONS"])
	if coll == "" || strings.Contains(coll, " ") {
		t.Fatalf("BBFILE_COLLECTIONS = %q, want one collection", coll)
	}
	if coll == LayerDir {
		t.Errorf("collection %q equals the folder name (clashes with eclipse-kanto/meta-kanto)", coll)
	}
	for _, v := range []string{"BBPATH", "BBFILES", "BBFILE_PATTERN_" + coll, "BBFILE_PRIORITY_" + coll,
		"LAYERVERSION_" + coll, "LAYERDEPENDS_" + coll, "LAYERSERIES_COMPAT_" + coll} {
		if strings.TrimSpace(vars[v]) == "" {
			t.Errorf("layer.conf does not set %s", v)
		}
	}
	if got := vars["LAYERSERIES_COMPAT_"+coll]; got != "wrynose" {
		t.Errorf("LAYERSERIES_COMPAT_%s = %q, want \"wrynose\"", coll, got)
	}
	if _, err := strconv.Atoi(vars["BBFILE_PRIORITY_"+coll]); err != nil {
		t.Errorf("BBFILE_PRIORITY_%s = %q: %v", coll, vars["BBFILE_PRIORITY_"+coll], err)
	}
	deps := " " + vars["LAYERDEPENDS_"+coll] + " "
	for _, d := range []string{"core", "openembedded-layer", "networking-layer", "virtualization-layer"} {
		if !strings.Contains(deps, " "+d+" ") {
			t.Errorf("LAYERDEPENDS_%s lacks %s", coll, d)
		}
	}
	// A layer must not make global choices (yocto-check-layer test_signatures).
	for _, a := range f.Assignments {
		for _, v := range []string{"MACHINE", "DISTRO", "DISTRO_FEATURES", "INIT_MANAGER"} {
			if a.Name == v || strings.HasPrefix(a.Name, v+":") {
				t.Errorf("layer.conf:%d sets %s (belongs in the distro conf or kas)", a.Line, a.Name)
			}
		}
	}
}

func TestDistroConf(t *testing.T) {
	root := repoRoot(t)
	path := filepath.Join(root, LayerDir, "conf/distro/kanto.conf")
	f, err := parseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	vars := bb.Vars(f)
	if vars["DISTRO"] != "kanto" || vars["INIT_MANAGER"] != "systemd" {
		t.Errorf("DISTRO = %q, INIT_MANAGER = %q; want kanto, systemd", vars["DISTRO"], vars["INIT_MANAGER"])
	}
	if !strings.Contains(" "+vars["DISTRO_FEATURES"]+" ", " virtualization ") {
		t.Error("DISTRO_FEATURES lacks virtualization (meta-virtualization's containerd needs it)")
	}
	for _, inc := range f.Includes {
		if strings.Contains(inc, "poky") {
			t.Errorf("kanto.conf includes %s: meta-poky has no wrynose branch here", inc)
		}
	}
}

func TestReadmeAndLicense(t *testing.T) {
	root := repoRoot(t)
	readme := strings.ToLower(string(readFile(t, filepath.Join(root, LayerDir, "README.md"))))
	// yocto-check-layer's test_readme.
	if !strings.Contains(readme, "maintainer") || !strings.Contains(readme, "patch") {
		t.Error("README.md must name a maintainer and say how to send patches")
	}
	if !regexp.MustCompile(`[a-z0-9._+-]+@[a-z0-9.-]+\.[a-z]+`).MatchString(readme) {
		t.Error("README.md has no e-mail address")
	}
	for _, p := range []string{filepath.Join(LayerDir, "LICENSE"), "LICENSE"} {
		if !strings.Contains(string(readFile(t, filepath.Join(root, p))), "Apache License") {
			t.Errorf("%s is not the Apache-2.0 license", p)
		}
	}
}

// commonLicenseMD5 are the md5sums of openembedded-core's
// meta/files/common-licenses texts the recipes refer to.
var commonLicenseMD5 = map[string]string{
	"Apache-2.0": "89aea4e17d99a7cacdbeed46a0096b10",
	"MIT":        "0835ade698e0bcf8506ecda2f7b4f302",
}

func TestRecipeMetadata(t *testing.T) {
	root := repoRoot(t)
	for _, r := range recipes(t) {
		t.Run(r.Path, func(t *testing.T) {
			if r.Append {
				return
			}
			for _, v := range []string{"SUMMARY", "LICENSE", "LIC_FILES_CHKSUM"} {
				if strings.TrimSpace(r.Vars[v]) == "" {
					t.Errorf("%s is not set", v)
				}
			}
			for _, u := range bb.ParseURIs(r.Get("LIC_FILES_CHKSUM")) {
				checkLicense(t, root, r, u)
			}
			// A dependency on an undefined variable stays a literal
			// "${...}" and breaks the build.
			for k := range r.Vars {
				if !strings.HasPrefix(k, "RDEPENDS") && !strings.HasPrefix(k, "RRECOMMENDS") && k != "DEPENDS" {
					continue
				}
				if v := bb.StripPython(r.Get(k)); strings.Contains(v, "${") {
					t.Errorf("%s = %q refers to a variable the recipe does not define", k, v)
				}
			}
		})
	}
}

func checkLicense(t *testing.T, root string, r *Recipe, u bb.URI) {
	t.Helper()
	want := u.Params["md5"]
	if want == "" {
		t.Errorf("LIC_FILES_CHKSUM %s has no md5", u.Path)
		return
	}
	if name, ok := strings.CutPrefix(u.Path, "${COMMON_LICENSE_DIR}/"); ok {
		if known, ok := commonLicenseMD5[name]; !ok || known != want {
			t.Errorf("LIC_FILES_CHKSUM %s: md5 %s, want %s (openembedded-core's text)", u.Path, want, known)
		}
		return
	}
	// Go recipes: S/src/${GO_IMPORT}/X is the repository's X.
	rel, ok := strings.CutPrefix(u.Path, "src/"+r.Get("GO_IMPORT")+"/")
	if !ok {
		t.Errorf("LIC_FILES_CHKSUM %s: cannot locate the file here", u.Path)
		return
	}
	data := readFile(t, filepath.Join(root, rel))
	if b, e := u.Params["beginline"], u.Params["endline"]; b != "" || e != "" {
		data = lines(data, b, e)
	}
	sum := md5.Sum(data)
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Errorf("LIC_FILES_CHKSUM %s: md5 of %s is %s, recipe says %s", u.Path, rel, got, want)
	}
}

func lines(data []byte, begin, end string) []byte {
	ls := bytes.SplitAfter(data, []byte("\n"))
	b, _ := strconv.Atoi(begin)
	e, _ := strconv.Atoi(end)
	if b < 1 {
		b = 1
	}
	if e < 1 || e > len(ls) {
		e = len(ls)
	}
	return bytes.Join(ls[b-1:e], nil)
}

func TestNoNetworkNoRemoteAutorev(t *testing.T) {
	netCmd := regexp.MustCompile(`\b(curl|wget|git\s+(clone|fetch|ls-remote)|go\s+(get|mod\s+download)|pip3?\s+install|npm\s+(install|ci))\b`)
	for _, r := range recipes(t) {
		t.Run(r.Path, func(t *testing.T) {
			for _, a := range r.Main.Assignments {
				if a.Flag == "network" {
					t.Errorf("line %d: %s[network] = %q: tasks must not use the network", a.Line, a.Name, a.Value)
				}
				if a.Name == "BB_NO_NETWORK" || a.Name == "BB_ALLOWED_NETWORKS" {
					t.Errorf("line %d: recipes must not change %s", a.Line, a.Name)
				}
			}
			for _, fn := range r.Main.Funcs {
				if m := netCmd.FindString(fn.Body); m != "" {
					t.Errorf("function %s (line %d) runs %q", fn.Name, fn.Line, m)
				}
			}
			autorev := false
			for k, v := range r.Vars {
				if strings.HasPrefix(k, "SRCREV") && strings.Contains(v, "AUTOREV") {
					autorev = true
				}
			}
			for _, src := range r.Matching("SRC_URI") {
				for _, u := range bb.ParseURIs(src) {
					switch u.Scheme {
					case "file", "gomod":
					case "git", "gitsm":
						if autorev && u.Params["protocol"] != "file" {
							t.Errorf("AUTOREV on the remote %s://%s", u.Scheme, u.Path)
						}
					default:
						t.Errorf("SRC_URI %s://%s: only file://, local git:// and gomod:// are allowed", u.Scheme, u.Path)
					}
				}
			}
			if hasInherit(r, "go-mod") && r.Vars["GOPROXY"] != "off" {
				t.Errorf("Go recipe: GOPROXY = %q, want \"off\" (modules come through the gomod fetcher)", r.Vars["GOPROXY"])
			}
		})
	}
}

func hasInherit(r *Recipe, class string) bool {
	for _, c := range r.Main.Inherits {
		if c == class {
			return true
		}
	}
	return false
}

func TestSrcURIFilesExist(t *testing.T) {
	for _, r := range recipes(t) {
		t.Run(r.Path, func(t *testing.T) {
			for override, src := range r.Matching("SRC_URI") {
				machines := []string{""}
				if strings.Contains(src, "${MACHINE}") {
					machines = Machines
				}
				for _, m := range machines {
					expanded := strings.ReplaceAll(src, "${MACHINE}", m)
					for _, u := range bb.ParseURIs(expanded) {
						if u.Scheme != "file" || strings.Contains(u.Path, "${") {
							continue
						}
						if _, ok := r.FindFile(u.Path); !ok {
							t.Errorf("SRC_URI%s: file://%s not found in %v", suffix(override), u.Path, r.FilesPath())
						}
					}
				}
			}
		})
	}
}

func suffix(override string) string {
	if override == "" {
		return ""
	}
	return ":" + override
}

// TestKantoSources checks the Go sources the kanto recipe copies: every
// KANTO_GO_SRC entry exists, and every package of the module that the
// binary imports lies under one of them.
func TestKantoSources(t *testing.T) {
	root := repoRoot(t)
	r := recipe(t, "kanto")
	src := r.Words("KANTO_GO_SRC")
	for _, p := range src {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("KANTO_GO_SRC entry %s: %v", p, err)
		}
	}
	for _, must := range []string{"go.mod", "go.sum", "LICENSE"} {
		if !contains(src, must) {
			t.Errorf("KANTO_GO_SRC lacks %s", must)
		}
	}
	dirs, err := goListMainDirs(root, "./services/cmd/kanto")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		rel, err := filepath.Rel(root, d)
		if err != nil {
			t.Fatal(err)
		}
		top, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
		if !contains(src, top) {
			t.Errorf("the kanto binary imports %s, but KANTO_GO_SRC (meta-kanto/recipes-kanto/kanto/kanto.bb) lacks %s", rel, top)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestConfigsAreStrictJSON: every JSON file of the layer is one JSON object
// without duplicate keys.
func TestConfigsAreStrictJSON(t *testing.T) {
	root := repoRoot(t)
	paths, err := filepath.Glob(filepath.Join(root, LayerDir, "recipes-*/*/files/*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no JSON configs found")
	}
	for _, p := range paths {
		if err := strictJSON(readFile(t, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

var errDuplicate = errors.New("duplicate key")

func strictJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("top level is %v, want an object", tok)
	}
	if err := walkObject(dec); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("data after the top-level object")
	}
	return nil
}

// walkObject reads the members of an object whose '{' was consumed.
func walkObject(dec *json.Decoder) error {
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string)
		if seen[key] {
			return fmt.Errorf("%q: %w", key, errDuplicate)
		}
		seen[key] = true
		if err := walkValue(dec); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

func walkValue(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return walkObject(dec)
	case json.Delim('['):
		for dec.More() {
			if err := walkValue(dec); err != nil {
				return err
			}
		}
		_, err := dec.Token()
		return err
	}
	return nil
}

// TestImageContents: the image installs every package of the kanto recipe
// (through packagegroup-kanto) and the board config, and its boot partition
// lists exactly the files kanto-bootfiles deploys.
func TestImageContents(t *testing.T) {
	kanto := recipe(t, "kanto")
	pg := strings.Fields(recipe(t, "packagegroup-kanto").Get("RDEPENDS:${PN}"))
	for _, p := range append(kanto.Words("PACKAGE_BEFORE_PN"), "kanto") {
		if !contains(pg, p) {
			t.Errorf("packagegroup-kanto does not install %s", p)
		}
	}
	for _, p := range []string{"mosquitto", "virtual-containerd"} {
		if !contains(pg, p) {
			t.Errorf("packagegroup-kanto does not install %s", p)
		}
	}
	img := recipe(t, "kanto-image")
	install := img.Words("IMAGE_INSTALL")
	for _, p := range []string{"packagegroup-kanto", "kanto-boot-config", "kernel-image"} {
		if !contains(install, p) {
			t.Errorf("kanto-image IMAGE_INSTALL lacks %s", p)
		}
	}
	bootfiles := recipe(t, "kanto-bootfiles")
	deploy := ""
	for _, fn := range bootfiles.Main.Funcs {
		if fn.Name == "do_deploy" {
			deploy = fn.Body
		}
	}
	for override, v := range img.Matching("IMAGE_BOOT_FILES") {
		checkBootFiles(t, "IMAGE_BOOT_FILES"+suffix(override), v, deploy)
	}
	for override, v := range img.Matching("IMAGE_EFI_BOOT_FILES") {
		checkBootFiles(t, "IMAGE_EFI_BOOT_FILES"+suffix(override), v, deploy)
	}
}

func checkBootFiles(t *testing.T, name, value, deploy string) {
	t.Helper()
	for _, e := range strings.Fields(value) {
		src, _, _ := strings.Cut(e, ";")
		if !strings.Contains(deploy, " "+src+" ") && !strings.Contains(deploy, " "+src+";") {
			t.Errorf("%s takes %s from the deploy directory, kanto-bootfiles does not deploy it", name, src)
		}
	}
}
