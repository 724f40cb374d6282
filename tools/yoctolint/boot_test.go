package yoctolint

import (
	"bufio"
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kantofw/kanto/board"
	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/firmware/bootenv/bootenvtest"
	"github.com/kantofw/kanto/firmware/slot"
	"github.com/kantofw/kanto/internal/testenv"
	"github.com/kantofw/kanto/tools/internal/bb"
	"github.com/kantofw/kanto/tools/internal/layergen"
)

const bootFiles = LayerDir + "/recipes-bsp/kanto-boot/files"

// bootloaderOf is the bootloader of each machine (KANTO_BOOTLOADER of
// layer.conf; TestLayerBootloaders keeps the two in step).
var bootloaderOf = map[string]string{
	"qemux86-64":      slot.BootloaderGrub,
	"qemuarm64":       slot.BootloaderUBoot,
	"raspberrypi4-64": slot.BootloaderUBoot,
}

func TestLayerBootloaders(t *testing.T) {
	root := repoRoot(t)
	f, err := parseFile(filepath.Join(root, LayerDir, "conf/layer.conf"))
	if err != nil {
		t.Fatal(err)
	}
	vars := bb.Vars(f)
	for _, m := range Machines {
		got := vars["KANTO_BOOTLOADER"]
		if v, ok := vars["KANTO_BOOTLOADER:"+m]; ok {
			got = v
		}
		if got != bootloaderOf[m] {
			t.Errorf("KANTO_BOOTLOADER for %s = %q, want %q", m, got, bootloaderOf[m])
		}
	}
}

// memStore is a bootenv.Store in memory.
type memStore struct {
	env    map[string]string
	writes int
}

func (m *memStore) Read() (map[string]string, error) { return maps.Clone(m.env), nil }

func (m *memStore) Write(set map[string]string) error {
	m.writes++
	for k, v := range set {
		if v == "" {
			delete(m.env, k)
		} else {
			m.env[k] = v
		}
	}
	return nil
}

// readEnvText reads KEY=VALUE lines.
func readEnvText(t *testing.T, path string) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", path, sc.Text())
		}
		env[k] = v
	}
	return env
}

// TestGeneratedFilesUpToDate: the boot scripts and the gomod list equal
// what tools/yoctogen derives from firmware/scripts and go.sum now.
func TestGeneratedFilesUpToDate(t *testing.T) {
	root := repoRoot(t)
	files, err := layergen.BootScripts(root)
	if err != nil {
		t.Fatalf("deriving the boot scripts from firmware/scripts: %v", err)
	}
	stale, err := layergen.Stale(root, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) > 0 {
		t.Errorf("out of date, run go run ./tools/yoctogen: %v", stale)
	}
}

// TestInitialGrubEnv: the grubenv kanto-bootfiles deploys is what
// firmware/bootenv reads and grub-editenv lists, and the first boot picks
// slot A without writing (committed).
func TestInitialGrubEnv(t *testing.T) {
	root := repoRoot(t)
	env := readEnvText(t, filepath.Join(root, bootFiles, "grubenv.txt"))
	// The recipe: header, the text, '#' up to 1024 bytes.
	block := []byte("# GRUB Environment Block\n" + string(readFile(t, filepath.Join(root, bootFiles, "grubenv.txt"))))
	block = append(block, bytes.Repeat([]byte("#"), bootenv.GrubBlockSize-len(block))...)
	got, err := bootenv.ParseGrubEnv(block)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, env); diff != "" {
		t.Errorf("parsed grubenv (-got +want):\n%s", diff)
	}
	checkGrubEnv(t, env)

	editenv := testenv.LookPath(t, "grub-editenv")
	path := filepath.Join(t.TempDir(), "grubenv")
	if err := os.WriteFile(path, block, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(editenv, path, "list").Output()
	if err != nil {
		t.Fatalf("grub-editenv list: %v", err)
	}
	listed := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		listed[k] = v
	}
	if diff := cmp.Diff(listed, env); diff != "" {
		t.Errorf("grub-editenv list (-got +want):\n%s", diff)
	}
}

func checkGrubEnv(t *testing.T, env map[string]string) {
	t.Helper()
	store := &memStore{env: maps.Clone(env)}
	st, err := bootenv.NewGrubScheme(store).State()
	if err != nil {
		t.Fatal(err)
	}
	if st.Primary() != bootenv.SlotA || st.Slots[bootenv.SlotA].Trial || st.Slots[bootenv.SlotB].Bootable {
		t.Errorf("initial GRUB state %+v: want A primary and committed, B not bootable", st)
	}
	if s, err := bootenvtest.GrubBoot(store); err != nil || s != bootenv.SlotA || store.writes != 0 {
		t.Errorf("first boot: slot %q, %d writes, %v; want A without a write", s, store.writes, err)
	}
}

// TestInitialUBootEnv: the U-Boot environment the recipe builds with
// mkenvimage (redundant, KANTO_UBOOT_ENV_SIZE) is what firmware/bootenv
// reads, and the first boot picks slot A without writing.
func TestInitialUBootEnv(t *testing.T) {
	root := repoRoot(t)
	envPath := filepath.Join(root, bootFiles, "uboot-env.txt")
	env := readEnvText(t, envPath)
	store := &memStore{env: maps.Clone(env)}
	st, err := bootenv.NewUBootScheme(store, 0).State()
	if err != nil {
		t.Fatal(err)
	}
	if st.Primary() != bootenv.SlotA || st.Slots[bootenv.SlotA].Trial || st.Slots[bootenv.SlotB].Bootable {
		t.Errorf("initial U-Boot state %+v: want A primary and committed, B not bootable", st)
	}
	if env["BOOT_A_LEFT"] != strconv.Itoa(bootenv.DefaultBootAttempts) {
		t.Errorf("BOOT_A_LEFT=%s, want %d (bootAttempts)", env["BOOT_A_LEFT"], bootenv.DefaultBootAttempts)
	}
	if s, err := bootenvtest.UBootBoot(store); err != nil || s != bootenv.SlotA || store.writes != 0 {
		t.Errorf("first boot: slot %q, %d writes, %v; want A without a write", s, store.writes, err)
	}

	size := envSize(t, recipe(t, "kanto-bootfiles").Get("KANTO_UBOOT_ENV_SIZE"))
	mkenvimage := testenv.LookPath(t, "mkenvimage")
	out := filepath.Join(t.TempDir(), "uboot.env")
	if b, err := exec.Command(mkenvimage, "-r", "-s", strconv.FormatInt(size, 10), "-o", out, envPath).CombinedOutput(); err != nil {
		t.Fatalf("mkenvimage: %v\n%s", err, b)
	}
	got, _, err := bootenv.ParseUBootEnv(readFile(t, out), true)
	if err != nil {
		t.Fatalf("firmware/bootenv cannot read the mkenvimage output: %v", err)
	}
	if diff := cmp.Diff(got, env); diff != "" {
		t.Errorf("parsed U-Boot env (-got +want):\n%s", diff)
	}
}

func envSize(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil {
		t.Fatalf("env size %q: %v", s, err)
	}
	return n
}

// TestSchemeVariablesInScripts: every variable the firmware code writes is
// one the boot scripts of the layer read (and the slot kernel argument is
// set), so code and scripts cannot drift apart.
func TestSchemeVariablesInScripts(t *testing.T) {
	root := repoRoot(t)
	written := func(s bootenv.Scheme, store *memStore) []string {
		keys := map[string]bool{}
		for _, op := range []func(string) error{s.MarkBad, s.Arm, s.Commit} {
			for _, sl := range []string{bootenv.SlotA, bootenv.SlotB} {
				if err := op(sl); err != nil {
					t.Fatal(err)
				}
				for k := range store.env {
					keys[k] = true
				}
			}
		}
		return slices.Sorted(maps.Keys(keys))
	}
	grubStore := &memStore{env: readEnvText(t, filepath.Join(root, bootFiles, "grubenv.txt"))}
	grubKeys := written(bootenv.NewGrubScheme(grubStore), grubStore)
	grubCfg := string(readFile(t, filepath.Join(root, layergen.GrubCfg)))
	loadEnv := regexp.MustCompile(`(?m)^load_env (.*)$`).FindStringSubmatch(grubCfg)
	if loadEnv == nil {
		t.Fatalf("%s has no load_env line", layergen.GrubCfg)
	}
	for _, k := range grubKeys {
		if !slices.Contains(strings.Fields(loadEnv[1]), k) {
			t.Errorf("firmware writes grubenv %s, %s does not load it", k, layergen.GrubCfg)
		}
	}
	if !strings.Contains(grubCfg, "kanto.slot=$SLOT") {
		t.Errorf("%s does not pass kanto.slot=", layergen.GrubCfg)
	}

	ubootStore := &memStore{env: readEnvText(t, filepath.Join(root, bootFiles, "uboot-env.txt"))}
	ubootKeys := written(bootenv.NewUBootScheme(ubootStore, 0), ubootStore)
	for _, m := range []string{"qemuarm64", "raspberrypi4-64"} {
		script := string(readFile(t, filepath.Join(root, layergen.UBootScript(m))))
		for _, k := range ubootKeys {
			if !strings.Contains(script, "${"+k+"}") {
				t.Errorf("firmware writes U-Boot %s, the %s script does not read it", k, m)
			}
		}
		if !strings.Contains(script, "kanto.slot=${kanto_slot}") {
			t.Errorf("the %s script does not pass kanto.slot=", m)
		}
		if mkimage, err := exec.LookPath("mkimage"); err == nil {
			out := filepath.Join(t.TempDir(), "boot.scr")
			if b, err := exec.Command(mkimage, "-A", "arm64", "-T", "script", "-C", "none", "-d",
				filepath.Join(root, layergen.UBootScript(m)), out).CombinedOutput(); err != nil {
				t.Errorf("mkimage %s: %v\n%s", m, err, b)
			}
		} else {
			testenv.Missing(t, "mkimage (Debian u-boot-tools) not installed")
		}
	}
}

// wksPart is one "part" line of a kickstart file.
type wksPart struct {
	Mount string
	Opts  map[string]string
}

func parseWks(t *testing.T, path string) []wksPart {
	t.Helper()
	var parts []wksPart
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "part" {
			continue
		}
		p := wksPart{Opts: map[string]string{}}
		rest := f[1:]
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "--") {
			p.Mount, rest = rest[0], rest[1:]
		}
		for i := 0; i < len(rest); i++ {
			k, v, ok := strings.Cut(rest[i], "=")
			if !ok && i+1 < len(rest) && !strings.HasPrefix(rest[i+1], "--") {
				v = rest[i+1]
				i++
			}
			p.Opts[k] = strings.Trim(v, `"`)
		}
		parts = append(parts, p)
	}
	return parts
}

// TestABLayouts: per machine, the wic layout, the fstab of kanto-image, the
// slots file (read by firmware/slot, compared with the board profile where
// one exists), the boot script's partitions and fw_env.config agree.
func TestABLayouts(t *testing.T) {
	root := repoRoot(t)
	img := recipe(t, "kanto-image")
	bundle := recipe(t, "kanto-bundle")
	for _, m := range Machines {
		t.Run(m, func(t *testing.T) {
			img.Vars["MACHINE"] = m
			wks := filepath.Join(root, LayerDir, "files", "wic", strings.ReplaceAll(img.Get("WKS_FILE"), "${MACHINE}", m))
			parts := parseWks(t, wks)
			if len(parts) != 4 {
				t.Fatalf("%s: %d partitions, want boot, rootfs A, rootfs B, data", wks, len(parts))
			}
			a, b, data := parts[1], parts[2], parts[3]
			if a.Mount != "/" || a.Opts["--source"] != "rootfs" || b.Opts["--source"] != "empty" {
				t.Errorf("partitions 2 and 3 must be the rootfs (slot A) and an empty slot B: %+v %+v", a, b)
			}
			if a.Opts["--fixed-size"] == "" || a.Opts["--fixed-size"] != b.Opts["--fixed-size"] {
				t.Errorf("slots A and B must have the same --fixed-size: %q %q", a.Opts["--fixed-size"], b.Opts["--fixed-size"])
			}
			if data.Mount != "/var/lib/kanto" {
				t.Errorf("partition 4 mounts at %q, want /var/lib/kanto (state kept across updates)", data.Mount)
			}
			for i, p := range parts {
				if p.Mount != "" {
					if _, ok := p.Opts["--no-fstab-update"]; !ok {
						t.Errorf("partition %d (%s): wic must not edit fstab (slot B would miss it)", i+1, p.Mount)
					}
				}
			}
			fstab := img.Matching("KANTO_FSTAB")[m]
			for _, p := range []wksPart{parts[0], data} {
				if !strings.Contains(fstab, " "+p.Mount+" ") {
					t.Errorf("KANTO_FSTAB:%s does not mount %s", m, p.Mount)
				}
			}

			cfg, err := slot.Parse(installedSlotsFile(t, root, m, "1.2.3", "refuse"))
			if err != nil {
				t.Fatalf("firmware/slot rejects slots-%s.json as installed: %v", m, err)
			}
			if cfg.BaseVersion != "1.2.3" || cfg.Downgrade != slot.DowngradeRefuse {
				t.Errorf("slots-%s.json as installed: baseVersion %q, downgrade %q; the recipe's substitutions do not reach them", m, cfg.BaseVersion, cfg.Downgrade)
			}
			if cfg.Bootloader != bootloaderOf[m] {
				t.Errorf("bootloader %q, want %q", cfg.Bootloader, bootloaderOf[m])
			}
			if want := bundle.Matching("KANTO_BUNDLE_COMPATIBLE")[m]; cfg.Compatible != want {
				t.Errorf("compatible %q, kanto-bundle signs for %q", cfg.Compatible, want)
			}
			if !strings.HasPrefix(cfg.StateDir, data.Mount+"/") {
				t.Errorf("stateDir %s is not on the data partition (%s)", cfg.StateDir, data.Mount)
			}
			devs := map[string]string{}
			for _, s := range cfg.Slots {
				if s.Class == "rootfs" {
					devs[s.Name] = s.Device
				}
			}
			for name, n := range map[string]string{bootenv.SlotA: "2", bootenv.SlotB: "3"} {
				if !strings.HasSuffix(devs[name], n) {
					t.Errorf("slot %s device %q is not partition %s of the layout", name, devs[name], n)
				}
			}
			if p, err := board.Lookup(cfg.Compatible); err == nil {
				want := slot.Config{Compatible: p.Name, Bootloader: p.Bootloader, GrubEnv: p.GrubEnv, UBootConfig: p.UBootConfig, StateDir: p.StateDir, Slots: p.Slots}
				got := *cfg
				got.BootAttempts, got.BaseVersion, got.Downgrade = 0, "", ""
				if diff := cmp.Diff(got, want); diff != "" {
					t.Errorf("slots-%s.json differs from board profile %s (-got +want):\n%s", m, p.Name, diff)
				}
			} else {
				t.Logf("no board profile %q in board/: slots file checked on its own", cfg.Compatible)
			}

			switch cfg.Bootloader {
			case slot.BootloaderGrub:
				checkGrubLayout(t, root, img, parts, cfg)
			case slot.BootloaderUBoot:
				checkUBootLayout(t, root, m, parts, cfg, devs)
			}
		})
	}
}

func checkGrubLayout(t *testing.T, root string, img *Recipe, parts []wksPart, cfg *slot.Config) {
	esp := parts[0]
	if esp.Opts["--source"] != "bootimg_efi" {
		t.Errorf("partition 1 source %q, want bootimg_efi", esp.Opts["--source"])
	}
	// The grubenv lands at ESP:/EFI/BOOT/grubenv (IMAGE_EFI_BOOT_FILES),
	// next to grub.cfg, where load_env finds it; userspace sees it under
	// the ESP's mount point.
	if want := esp.Mount + "/EFI/BOOT/grubenv"; cfg.GrubEnv != want {
		t.Errorf("slots grubenv %q, want %q", cfg.GrubEnv, want)
	}
	if !strings.Contains(img.Matching("IMAGE_EFI_BOOT_FILES")["append:qemux86-64"], "kanto-grubenv;EFI/BOOT/grubenv") {
		t.Error("IMAGE_EFI_BOOT_FILES does not put kanto-grubenv at EFI/BOOT/grubenv")
	}
	grubCfg := string(readFile(t, filepath.Join(root, layergen.GrubCfg)))
	for i, name := range []string{bootenv.SlotA, bootenv.SlotB} {
		p := parts[i+1]
		if !strings.Contains(grubCfg, "set KANTO_PART_"+name+"="+strconv.Itoa(i+2)+"\n") {
			t.Errorf("grub.cfg does not boot slot %s from gpt%d", name, i+2)
		}
		label := p.Opts["--part-name"]
		if label == "" || !strings.Contains(grubCfg, `set KANTO_ROOT_`+name+`="PARTLABEL=`+label+`"`) {
			t.Errorf("grub.cfg root= of slot %s does not name the partition label %q", name, label)
		}
		for _, s := range cfg.Slots {
			if s.Name == name && s.Class == "rootfs" && s.PartLabel != label {
				t.Errorf("slots file partlabel of %s is %q, wks says %q", name, s.PartLabel, label)
			}
		}
	}
}

func checkUBootLayout(t *testing.T, root, m string, parts []wksPart, cfg *slot.Config, devs map[string]string) {
	script := string(readFile(t, filepath.Join(root, layergen.UBootScript(m))))
	for name, n := range map[string]string{bootenv.SlotA: "2", bootenv.SlotB: "3"} {
		if !strings.Contains(script, "setenv kanto_part_"+name+" "+n+"\n") {
			t.Errorf("boot script does not load slot %s from partition %s", name, n)
		}
		if !strings.Contains(script, "setenv kanto_root_"+name+" "+devs[name]+"\n") {
			t.Errorf("boot script root= of slot %s is not the slots file's %s", name, devs[name])
		}
	}
	fwEnv := filepath.Join(root, bootFiles, "fw_env-"+m+".config")
	copies, err := bootenv.ParseFwEnvConfig(bytes.NewReader(readFile(t, fwEnv)))
	if err != nil {
		t.Fatalf("firmware/bootenv rejects %s: %v", fwEnv, err)
	}
	if len(copies) != 2 {
		t.Errorf("%d environment copies, want 2 (redundant)", len(copies))
	}
	if cfg.UBootConfig != "/etc/fw_env.config" {
		t.Errorf("ubootConfig %q, kanto-boot-config installs /etc/fw_env.config", cfg.UBootConfig)
	}
	frag := string(readFile(t, filepath.Join(root, LayerDir, "recipes-bsp/u-boot/files/kanto-env-"+m+".cfg")))
	size := envSize(t, recipe(t, "kanto-bootfiles").Get("KANTO_UBOOT_ENV_SIZE"))
	for _, c := range copies {
		if c.Size != size || !strings.Contains(frag, "CONFIG_ENV_SIZE=0x"+strconv.FormatInt(size, 16)+"\n") {
			t.Errorf("env size: fw_env.config %#x, KANTO_UBOOT_ENV_SIZE %#x, U-Boot fragment must match", c.Size, size)
		}
		if filepath.Dir(c.Device) != parts[0].Mount {
			t.Errorf("env copy %s is not on the boot partition (%s)", c.Device, parts[0].Mount)
		}
	}
	for i, name := range []string{"CONFIG_ENV_FAT_FILE", "CONFIG_ENV_FAT_FILE_REDUND"} {
		if !strings.Contains(frag, name+`="`+filepath.Base(copies[i].Device)+`"`) {
			t.Errorf("%s of the U-Boot fragment is not %s", name, filepath.Base(copies[i].Device))
		}
	}
	for cmd, opt := range map[string]string{"setexpr ": "CONFIG_CMD_SETEXPR=y", "saveenv": "CONFIG_CMD_SAVEENV=y"} {
		if strings.Contains(script, cmd) && !strings.Contains(frag, opt+"\n") {
			t.Errorf("the boot script uses %s; the U-Boot fragment lacks %s", strings.TrimSpace(cmd), opt)
		}
	}
	if !strings.Contains(frag, `CONFIG_ENV_FAT_DEVICE_AND_PART="0:1"`) {
		t.Error("U-Boot keeps its environment elsewhere than partition 1 (the boot partition)")
	}
}

// grubDefaultBuiltin is openembedded-core's GRUB_BUILDIN of grub-efi.
var grubDefaultBuiltin = "boot linux ext2 fat serial part_msdos part_gpt normal efi_gop iso9660 configfile search loadenv test"

// grubCommandModule maps GRUB commands to the module providing them; ""
// means part of the script language of normal mode.
var grubCommandModule = map[string]string{
	"set": "", "unset": "", "export": "", "for": "", "if": "", "then": "", "else": "", "elif": "",
	"fi": "", "do": "", "done": "", "while": "", "break": "", "continue": "", "return": "",
	"load_env": "loadenv", "save_env": "loadenv", "list_env": "loadenv",
	"regexp": "regexp", "echo": "echo", "linux": "linux", "initrd": "linux", "boot": "boot",
	"test": "test", "[": "test", "search": "search", "configfile": "configfile",
	"serial": "serial", "terminal_input": "terminal", "terminal_output": "terminal",
	"sleep": "sleep", "reboot": "reboot", "halt": "halt", "insmod": "",
}

// TestGrubModules: every command of kanto-grub.cfg is built into the GRUB
// EFI image (oe-core's GRUB_BUILDIN plus the layer's grub-efi bbappend).
func TestGrubModules(t *testing.T) {
	root := repoRoot(t)
	app, err := parseFile(filepath.Join(root, LayerDir, "recipes-bsp/grub/grub-efi_%.bbappend"))
	if err != nil {
		t.Fatal(err)
	}
	modules := strings.Fields(grubDefaultBuiltin)
	for _, a := range app.Assignments {
		if strings.HasPrefix(a.Name, "GRUB_BUILDIN:append") {
			modules = append(modules, strings.Fields(a.Value)...)
		}
	}
	cfg := string(readFile(t, filepath.Join(root, layergen.GrubCfg)))
	for n, line := range strings.Split(cfg, "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		for _, stmt := range strings.Split(line, ";") {
			f := strings.Fields(stmt)
			if len(f) == 0 || strings.Contains(f[0], "=") {
				continue
			}
			mod, known := grubCommandModule[f[0]]
			switch {
			case !known:
				t.Errorf("%s:%d: command %q unknown to this check: add it to grubCommandModule", layergen.GrubCfg, n+1, f[0])
			case mod != "" && !slices.Contains(modules, mod):
				t.Errorf("%s:%d: %s needs GRUB module %s, not in GRUB_BUILDIN", layergen.GrubCfg, n+1, f[0], mod)
			}
		}
	}
}

// installedSlotsFile is slots-<machine>.json as kanto-boot-config installs
// it: the sed expressions of its do_install, applied here, with
// KANTO_VERSION and KANTO_DOWNGRADE set to version and downgrade.
func installedSlotsFile(t *testing.T, root, machine, version, downgrade string) []byte {
	t.Helper()
	r := recipe(t, "kanto-boot-config")
	var install string
	for _, fn := range r.Main.Funcs {
		if fn.Name == "do_install" {
			install = fn.Body
		}
	}
	exprs := regexp.MustCompile(`-e '(s/[^']*)'`).FindAllStringSubmatch(install, -1)
	if len(exprs) != 2 {
		t.Fatalf("kanto-boot-config do_install: %d sed expressions, want 2 (baseVersion, downgrade)", len(exprs))
	}
	data := string(readFile(t, filepath.Join(root, bootFiles, "slots-"+machine+".json")))
	vars := map[string]string{"KANTO_VERSION": version, "KANTO_DOWNGRADE": downgrade}
	for _, e := range exprs {
		parts := strings.Split(e[1], "/") // s/old/new/
		if len(parts) != 4 {
			t.Fatalf("sed expression %q: want s/old/new/", e[1])
		}
		old, repl := parts[1], bb.Expand(parts[2], vars)
		if !strings.Contains(data, old) {
			t.Fatalf("slots-%s.json lacks %s, which kanto-boot-config substitutes", machine, old)
		}
		data = strings.Replace(data, old, repl, 1)
	}
	return []byte(data)
}
