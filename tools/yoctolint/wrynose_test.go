package yoctolint

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kantofw/kanto/tools/internal/bb"
)

// wrynoseObsolete are settings that wrynose (Yocto 6.0) dropped or turned
// into errors, with what replaces them (migration notes for 6.0 and 5.3).
// No bitbake runs here, so this is how a layer written for an older release
// is caught before a device maker's parse fails.
var wrynoseObsolete = []struct {
	re   *regexp.Regexp
	hint string
}{
	{regexp.MustCompile(`\b(DISTRO|MACHINE)_FEATURES_BACKFILL(_CONSIDERED)?\b`), "obsolete: use DISTRO_FEATURES_OPTED_OUT / MACHINE_FEATURES_OPTED_OUT"},
	{regexp.MustCompile(`\bDISTRO_FEATURES_DEFAULT\b`), "obsolete: the defaults are DISTRO_FEATURES_DEFAULTS, appended by oe-core"},
	{regexp.MustCompile(`\bWIC_SECTOR_SIZE\b`), "deprecated: WIC_CREATE_EXTRA_ARGS += \"--sector-size N\""},
	{regexp.MustCompile(`\binherit\b.*\bcve-check\b|\bINHERIT\b.*\bcve-check\b`), "the cve-check class was removed: use sbom-cve-check"},
	{regexp.MustCompile(`\$\{WORKDIR\}/(git|[a-z-]+\.(service|json|conf|cfg|cmd|txt))\b`), "files unpack to ${UNPACKDIR} since whinlatter"},
}

// layerTexts returns every metadata file of the layer and the kas files
// (whose local_conf_header ends up in local.conf), keyed by repo path.
func layerTexts(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(filepath.Join(root, LayerDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(p) {
		case ".bb", ".bbappend", ".inc", ".conf", ".bbclass", ".wks":
			rel, _ := filepath.Rel(root, p)
			out[rel] = string(readFile(t, p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	kas, _ := filepath.Glob(filepath.Join(root, "images/kas/*.yml"))
	for _, p := range append(kas, filepath.Join(root, "kas.yml")) {
		rel, _ := filepath.Rel(root, p)
		out[rel] = string(readFile(t, p))
	}
	return out
}

func TestNoPreWrynoseSettings(t *testing.T) {
	root := repoRoot(t)
	texts := layerTexts(t, root)
	if len(texts) < 10 {
		t.Fatalf("only %d layer files found", len(texts))
	}
	for rel, text := range texts {
		for i, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			for _, o := range wrynoseObsolete {
				if o.re.MatchString(line) {
					t.Errorf("%s:%d: %s (%s)", rel, i+1, strings.TrimSpace(line), o.hint)
				}
			}
		}
	}
}

// TestWicFilesWhereWrynoseLooks mirrors oe-core's sanity check (commit
// 07e410600c41): wks files in a layer's top-level wic/ are an error, the
// search path is <layer>/files/wic. Every WKS_FILE must resolve there.
func TestWicFilesWhereWrynoseLooks(t *testing.T) {
	root := repoRoot(t)
	layer := filepath.Join(root, LayerDir)
	for _, old := range []string{"wic", "scripts/lib/wic/canned-wks"} {
		if _, err := os.Stat(filepath.Join(layer, old)); err == nil {
			t.Errorf("%s/%s exists: wrynose's sanity check rejects it (move to files/wic)", LayerDir, old)
		}
	}
	err := filepath.WalkDir(layer, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(p, ".wks") || strings.HasSuffix(p, ".wks.in") {
			if filepath.Dir(p) != filepath.Join(layer, "files", "wic") {
				t.Errorf("%s is outside files/wic, where wic does not search", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	img := recipe(t, "kanto-image")
	for _, m := range []string{"qemux86-64", "qemuarm64", "raspberrypi4-64"} {
		name := strings.ReplaceAll(img.Get("WKS_FILE"), "${MACHINE}", m)
		if _, err := os.Stat(filepath.Join(layer, "files", "wic", name)); err != nil {
			t.Errorf("WKS_FILE for %s: %v", m, err)
		}
	}
	// Plugins with dashes were renamed in whinlatter (bootimg-efi ->
	// bootimg_efi); the old names no longer load.
	src := regexp.MustCompile(`--source[= ]+"?([A-Za-z0-9_-]+)`)
	wks, _ := filepath.Glob(filepath.Join(layer, "files", "wic", "*.wks"))
	for _, p := range wks {
		for _, m := range src.FindAllStringSubmatch(string(readFile(t, p)), -1) {
			if strings.Contains(m[1], "-") {
				t.Errorf("%s: wic plugin %q (renamed to %q since whinlatter)", filepath.Base(p), m[1], strings.ReplaceAll(m[1], "-", "_"))
			}
		}
	}
	if len(wks) != 3 {
		t.Errorf("%d wks files in files/wic, want one per machine (3)", len(wks))
	}
}

// wrynoseDistroDefaults is openembedded-core wrynose's
// DISTRO_FEATURES_DEFAULTS (meta/conf/distro/include/default-distrovars.inc),
// which base.bbclass appends to DISTRO_FEATURES minus
// DISTRO_FEATURES_OPTED_OUT.
var wrynoseDistroDefaults = strings.Fields(`alsa pulseaudio bluetooth wifi 3g nfc x11 wayland opengl vulkan
	ext2 vfat nfs zeroconf usbgadget usbhost ptest debuginfod gobject-introspection-data multiarch
	ldconfig largefile ipv6 kvm virtualization`)

// TestDistroFeaturesAfterDefaults computes the distro's effective
// DISTRO_FEATURES the way wrynose does and checks the headless set.
func TestDistroFeaturesAfterDefaults(t *testing.T) {
	root := repoRoot(t)
	f, err := parseFile(filepath.Join(root, LayerDir, "conf/distro/kanto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	vars := bb.Vars(f)
	eff := map[string]bool{}
	for _, x := range strings.Fields(vars["DISTRO_FEATURES"]) {
		eff[x] = true
	}
	out := map[string]bool{}
	for _, x := range strings.Fields(vars["DISTRO_FEATURES_OPTED_OUT"]) {
		out[x] = true
	}
	for _, x := range wrynoseDistroDefaults {
		if !out[x] {
			eff[x] = true
		}
	}
	// INIT_MANAGER = "systemd" adds these (init-manager-systemd.inc).
	eff["systemd"], eff["usrmerge"] = true, true
	for _, want := range []string{"systemd", "virtualization", "seccomp", "ipv4", "ipv6", "vfat", "ext2", "usbhost"} {
		if !eff[want] {
			t.Errorf("effective DISTRO_FEATURES lack %s", want)
		}
	}
	// Headless: graphics and audio would pull mesa, wayland and pulseaudio
	// into containerd's and systemd's dependency trees.
	for _, unwanted := range []string{"x11", "wayland", "opengl", "vulkan", "pulseaudio", "alsa", "ptest"} {
		if eff[unwanted] {
			t.Errorf("effective DISTRO_FEATURES include %s: add it to DISTRO_FEATURES_OPTED_OUT", unwanted)
		}
	}
	// wrynose dropped systemd's SysVinit compatibility: both features
	// together fail the parse.
	if eff["sysvinit"] {
		t.Error("DISTRO_FEATURES has sysvinit next to systemd (not allowed since wrynose)")
	}
	for x := range out {
		if !strings.Contains(" "+strings.Join(wrynoseDistroDefaults, " ")+" ", " "+x+" ") {
			t.Errorf("DISTRO_FEATURES_OPTED_OUT names %q, which is not a wrynose default (typo?)", x)
		}
	}
}
