package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/kantofw/kanto/firmware/bootenv"
	"github.com/kantofw/kanto/firmware/bundle"
	"github.com/kantofw/kanto/images/bmap"
	"github.com/kantofw/kanto/images/gpt"
	"github.com/kantofw/kanto/init/initcfg"
	"github.com/kantofw/kanto/init/kmod"
	"github.com/kantofw/kanto/init/pid1"
)

// build carries the state between steps.
type build struct {
	cfg   Config
	cache *cache
	res   *Result

	initBin, kantoBin string
	kver, vmlinuz     string
	modDir            string   // KernelRoot/lib/modules/KVER
	modPaths          []string // resolved load order, relative to modDir
	initramfsDir      string
	rootfsDir         string
	espDir, dataDir   string
	diskDir           string
	bundleDir         string
	layout            []Part
}

// run runs a host tool, keeping its output for the error message.
func (b *build) run(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if b.cfg.Log != nil {
		cmd.Stdout = io.MultiWriter(&out, b.cfg.Log)
		cmd.Stderr = cmd.Stdout
	}
	if err := cmd.Run(); err != nil {
		if _, lerr := exec.LookPath(name); lerr != nil {
			return fmt.Errorf("%s: %w (see scripts/deps.sh)", name, ErrTool)
		}
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func (b *build) goBuild(ctx context.Context, pkg, name string) (string, error) {
	dir := filepath.Join(b.cfg.CacheDir, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// One file per version (it is linked in), written under a temporary
	// name and renamed, so concurrent builds (parallel test packages)
	// never see a half-written binary.
	out := filepath.Join(dir, fmt.Sprintf("%s-%x", name, hashBytes([]byte(b.cfg.Version))[:6]))
	tmp, err := os.CreateTemp(dir, "."+name+"-")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	// Go's own build cache makes this cheap when nothing changed; the
	// binary is reproducible (-trimpath, no VCS stamp), so the steps that
	// consume it hit their caches.
	err = b.run(ctx, b.cfg.RepoDir, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64"},
		"go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w -X main.version="+b.cfg.Version, "-o", tmp.Name(), pkg)
	if err != nil {
		return "", err
	}
	return out, os.Rename(tmp.Name(), out)
}

func (b *build) goInit(ctx context.Context) (bool, error) {
	var err error
	b.initBin, err = b.goBuild(ctx, "./init/cmd/kanto-init", "kanto-init")
	return false, err
}

func (b *build) goKanto(ctx context.Context) (bool, error) {
	if b.cfg.KantoBinary != "" {
		b.kantoBin = b.cfg.KantoBinary
		return true, nil
	}
	var err error
	b.kantoBin, err = b.goBuild(ctx, "./services/cmd/kanto", "kanto")
	return false, err
}

// kernel finds the kernel and its modules, and resolves the module order.
func (b *build) kernel(ctx context.Context) (bool, error) {
	root := b.cfg.KernelRoot
	cached := false
	if root == "" {
		if v := newestKernel("/"); v != "" {
			root = "/"
		} else {
			var err error
			if root, cached, err = b.fetchKernel(ctx); err != nil {
				return false, err
			}
		}
	}
	kver := b.cfg.KernelVersion
	if kver == "" {
		kver = newestKernel(root)
	}
	if kver == "" {
		return false, fmt.Errorf("no kernel in %s/boot with modules in lib/modules: %w", root, ErrConfig)
	}
	b.kver, b.res.KernelVersion = kver, kver
	b.vmlinuz = filepath.Join(root, "boot", "vmlinuz-"+kver)
	b.res.Kernel = b.vmlinuz
	b.modDir = filepath.Join(root, "lib", "modules", kver)
	f, err := os.Open(filepath.Join(b.modDir, "modules.dep"))
	if err != nil {
		return false, fmt.Errorf("%w (run depmod)", err)
	}
	defer f.Close()
	deps, err := kmod.ParseDeps(f)
	if err != nil {
		return false, err
	}
	builtin := map[string]bool{}
	if bf, err := os.Open(filepath.Join(b.modDir, "modules.builtin")); err == nil {
		builtin, err = kmod.ParseBuiltin(bf)
		bf.Close()
		if err != nil {
			return false, err
		}
	}
	b.modPaths, err = deps.Resolve(b.cfg.Modules, builtin)
	return cached, err
}

// newestKernel returns the version of the newest kernel under root with
// both a vmlinuz and a modules directory.
func newestKernel(root string) string {
	ms, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	sort.Strings(ms)
	for i := len(ms) - 1; i >= 0; i-- {
		v := strings.TrimPrefix(filepath.Base(ms[i]), "vmlinuz-")
		if _, err := os.Stat(filepath.Join(root, "lib", "modules", v, "modules.dep")); err == nil {
			if f, err := os.Open(ms[i]); err == nil { // readable by us
				f.Close()
				return v
			}
		}
	}
	return ""
}

// fetchKernel downloads Debian's linux-image package that
// linux-image-amd64 depends on and unpacks it into the cache, without
// installing it (no initramfs-tools, no bootloader hooks).
func (b *build) fetchKernel(ctx context.Context) (string, bool, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil {
		return "", false, fmt.Errorf("apt-cache depends linux-image-amd64: %w", err)
	}
	m := regexp.MustCompile(`Depends: (linux-image-[0-9][^\s]*)`).FindSubmatch(out)
	if m == nil {
		return "", false, fmt.Errorf("no kernel package behind linux-image-amd64: %w", ErrConfig)
	}
	pkg := string(m[1])
	dir, hit, err := b.cache.get("kernelpkg", newKey("kernelpkg").str("pkg", pkg), func(dir string) error {
		if err := b.run(ctx, dir, nil, "apt-get", "download", pkg); err != nil {
			return err
		}
		debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
		if len(debs) != 1 {
			return fmt.Errorf("apt-get download %s gave %v", pkg, debs)
		}
		if err := b.run(ctx, dir, nil, "dpkg", "-x", debs[0], "root"); err != nil {
			return err
		}
		kv := strings.TrimPrefix(pkg, "linux-image-")
		if err := b.run(ctx, dir, nil, "depmod", "-b", "root", kv); err != nil {
			return err
		}
		return os.Remove(debs[0])
	})
	return filepath.Join(dir, "root"), hit, err
}

func (b *build) initramfs(ctx context.Context) (bool, error) {
	t := tree{}
	t.file("init", b.initBin, 0o755)
	t.data(strings.TrimPrefix(pid1.InitramfsMarker, "/"), []byte("kanto initramfs\n"), 0o644)
	t.data(strings.TrimPrefix(pid1.ModulesList, "/"), []byte(strings.Join(b.modPaths, "\n")+"\n"), 0o644)
	for _, p := range b.modPaths {
		t.file(filepath.Join("lib/modules", p), filepath.Join(b.modDir, p), 0o644)
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "sysroot"} {
		t.mkdir(d, 0o755)
	}
	k := newKey("initramfs").str("broken", fmt.Sprint(b.cfg.BrokenInitramfs))
	if err := t.addTo(k); err != nil {
		return false, err
	}
	dir, hit, err := b.cache.get("initramfs", k, func(dir string) error {
		f, err := os.Create(filepath.Join(dir, "initramfs.cpio"))
		if err != nil {
			return err
		}
		defer f.Close()
		if b.cfg.BrokenInitramfs {
			// An /init that exits at once: the kernel panics ("Attempted
			// to kill init!") before any of our code runs. (A garbage
			// archive would not do: with rootwait the kernel waits for
			// the root device forever instead of panicking.)
			bt := tree{}
			bt.data("init", exitELF(), 0o755)
			if err := bt.writeCPIO(f); err != nil {
				return err
			}
			return f.Close()
		}
		if err := t.writeCPIO(f); err != nil {
			return err
		}
		return f.Close()
	})
	b.initramfsDir = dir
	return hit, err
}

// initConfig is /etc/kanto/init.json of the slot.
func (b *build) initConfig() *initcfg.Config {
	c := &initcfg.Config{
		Hostname: "kanto",
		Mounts: []initcfg.Mount{
			{Device: "PARTLABEL=" + LabelData, Path: "/data", FSType: "ext4"},
			{Device: "PARTLABEL=" + LabelESP, Path: "/boot/efi", FSType: "vfat", Options: "iocharset=ascii", Optional: true},
		},
		Dirs: []string{"/data/var/lib/kanto", "/data/var/log", "/data/kanto/firmware", "/data/mosquitto"},
		// QEMU's user network has fixed addresses; a static setup saves the
		// DHCP round trips (set "dhcp": true for real hardware).
		Network: initcfg.Network{Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: []string{"10.0.2.3"}},
		Services: []initcfg.Service{{
			Name: "mosquitto", Exec: []string{"/usr/sbin/mosquitto", "-c", "/etc/mosquitto/mosquitto.conf"},
			Ready: "tcp", ReadyAddr: "127.0.0.1:1883",
		}},
		Health:   initcfg.Health{TimeoutSec: 60, Commit: "builtin", RebootDelaySec: 1},
		Watchdog: initcfg.Watchdog{Device: "/dev/watchdog", TimeoutSec: 30},
	}
	if !b.cfg.Minimal {
		agent := []string{"/usr/bin/kanto", "fw", "agent", "-slots", slotsPath,
			"-service", "mosquitto", "-service", "suite-connector"}
		if b.cfg.CloudWithin > 0 {
			agent = append(agent, "-cloud-within", fmt.Sprintf("%ds", b.cfg.CloudWithin))
		}
		c.Services = append(c.Services,
			initcfg.Service{Name: "suite-connector", Exec: []string{"/usr/bin/kanto", "suite-connector", "-configFile", connectorConfig},
				After: []string{"mosquitto"}, Ready: "notify", WatchdogSec: 60})
		if b.cfg.UpdateManager {
			c.Dirs = append(c.Dirs, "/data/kanto/update-manager")
			c.Services = append(c.Services, updateManagerServices(b.cfg.Version, b.cfg.SoftwareUpdate)...)
			if b.cfg.SoftwareUpdate {
				c.Dirs = append(c.Dirs, "/data/kanto/software-update")
			}
		} else {
			c.Services = append(c.Services, initcfg.Service{Name: "fw-agent", Exec: agent, After: []string{"mosquitto"}})
		}
		// The OTA agent decides about trial boots (its checks include the
		// services above); the init only reboots an unhealthy trial.
		c.Health.Commit = "none"
	}
	c.Services = append(c.Services, b.cfg.Services...)
	h := b.cfg.Health
	if h.TimeoutSec != 0 {
		c.Health.TimeoutSec = h.TimeoutSec
	}
	if h.Command != nil {
		c.Health.Command = h.Command
	}
	if h.Commit != "" {
		c.Health.Commit = h.Commit
	}
	if h.RebootDelaySec != 0 {
		c.Health.RebootDelaySec = h.RebootDelaySec
	}
	c.Defaults()
	return c
}

// updateManagerServices are the campaign path of an UpdateManager image:
// the update manager (the Ditto UpdateManager feature, reached through
// suite-connector) and the firmware domain agent over the OTA agent. They
// share the OTA database with kanto fw agent, so only one of the two runs.
// The agent's health check is the init's verdict (health.d), and it
// reports the firmware of a slot without a recorded version as version.
// With software, the software domain (kanto software-update, scripts run
// by busybox sh) is managed too.
func updateManagerServices(version string, software bool) []initcfg.Service {
	domains := "firmware"
	if software {
		domains = "firmware,software"
	}
	svcs := []initcfg.Service{
		{Name: "update-manager", Exec: []string{"/usr/bin/kanto", "update-manager", "-domains", domains,
			"-database", "/data/kanto/update-manager/campaign.db",
			"-report-feedback-interval", "1s", "-current-state-delay", "1s"}, After: []string{"mosquitto"}},
		{Name: "fw-update-agent", Exec: []string{"/usr/bin/kanto", "fw-update-agent", "-slots", slotsPath,
			"-keyring", "/etc/kanto/firmware/keyring.pem", "-stateDir", "/data/kanto/firmware",
			"-boardHooks", "/etc/kanto/board.d", "-healthChecks", "/etc/kanto/firmware/health.d",
			"-baseVersion", version}, After: []string{"mosquitto"}},
	}
	if software {
		svcs = append(svcs, initcfg.Service{Name: "software-update", Exec: []string{"/usr/bin/kanto", "software-update",
			"-domain", "software", "-storageLocation", "/data/kanto/software-update", "-logFile=",
			"-install", busyboxPath, "-install", "sh", "-install", "install.sh"}, After: []string{"mosquitto"}})
	}
	return svcs
}

// busyboxPath is the shell of install scripts in a SoftwareUpdate image.
const busyboxPath = "/usr/bin/busybox"

// Paths of the Kanto services' files in the slot.
const (
	slotsPath       = "/etc/kanto/firmware/slots.json"
	connectorConfig = "/etc/suite-connector/config.json"
)

// connectorConf points suite-connector at the provisioned identity on the
// data partition (written by kanto image provision); until it exists the
// connector waits for it. The address is empty so that an unprovisioned
// device passes the static checks (the default is a TLS hub, whose CA file
// would have to exist at start); the provisioning file supplies it. For a
// TLS hub, give the CA with -service or a connector config of your own:
// suite-connector checks the caCert file when it starts.
const connectorConf = `{
  "address": "",
  "provisioningFile": "/data/kanto/provisioning/provisioning.json",
  "caCert": "",
  "localAddress": "tcp://127.0.0.1:1883",
  "logFile": "",
  "bufferFile": "/data/kanto/suite-connector.buffer"
}
`

const mosquittoConf = `# Device-local broker of the Kanto image (services talk through it).
listener 1883 %s
allow_anonymous true
persistence true
persistence_location /data/mosquitto/
user root
log_dest stderr
log_type error
log_type warning
log_type notice
log_timestamp false
# suite-connector follows local command subscriptions through $SYS and keeps
# a deep queue for its session while it restarts.
log_dest topic
log_type subscribe
log_type unsubscribe
max_queued_messages 100000
`

func (b *build) slotsFile() ([]byte, error) {
	type slot struct {
		Name      string `json:"name"`
		Class     string `json:"class"`
		Device    string `json:"device"`
		PartLabel string `json:"partlabel"`
	}
	return json.MarshalIndent(map[string]any{
		"compatible": b.cfg.Compatible,
		// The factory image's version, for the downgrade check and the
		// firmware agent's current state before any update is recorded.
		"baseVersion": b.cfg.Version,
		"bootloader":  "grub",
		"grubenv":     "/boot/efi/EFI/BOOT/grubenv",
		"stateDir":    "/data/kanto/firmware",
		"slots": []slot{
			{"A", "rootfs", "/dev/vda2", LabelSlotA},
			{"B", "rootfs", "/dev/vda3", LabelSlotB},
		},
	}, "", "  ")
}

// rootfs builds the slot's ext4 filesystem. Layout: merged /usr (bin, sbin,
// lib, lib64 are symlinks into usr), /etc and /boot from the build, /var
// on the data partition, mount points for the init.
func (b *build) rootfs(ctx context.Context) (bool, error) {
	t := tree{}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		t.symlink(l, "usr/"+l)
	}
	t.file("usr/sbin/init", b.initBin, 0o755)
	t.symlink("usr/sbin/reboot", "init")
	t.symlink("usr/sbin/poweroff", "init")
	t.file("usr/bin/kanto", b.kantoBin, 0o755)
	const mosq = "/usr/sbin/mosquitto"
	t.file(mosq, mosq, 0o755)
	libs, err := sharedDeps(mosq)
	if err != nil {
		return false, err
	}
	for _, l := range libs {
		real, err := filepath.EvalSymlinks(l)
		if err != nil {
			return false, err
		}
		t.file(usrPath(l), real, 0o755)
	}
	t.file("boot/vmlinuz", b.vmlinuz, 0o644)
	t.file("boot/initramfs.cpio", filepath.Join(b.initramfsDir, "initramfs.cpio"), 0o644)
	for _, d := range []string{"boot/efi", "proc", "sys", "dev", "run", "tmp", "data", "root"} {
		t.mkdir(d, 0o755)
	}
	t.symlink("var", "data/var")
	ic, err := json.MarshalIndent(b.initConfig(), "", "  ")
	if err != nil {
		return false, err
	}
	if err := b.initConfig().Check(); err != nil {
		return false, err
	}
	t.data(initcfg.Path, append(ic, '\n'), 0o644)
	t.data(pid1.ReleaseFile, []byte(b.cfg.Version+"\n"), 0o644)
	slots, err := b.slotsFile()
	if err != nil {
		return false, err
	}
	t.data(slotsPath, append(slots, '\n'), 0o644)
	t.data(connectorConfig, []byte(connectorConf), 0o644)
	// Board hooks of the OTA agent: rebooting goes through PID 1, which
	// stops the services and unmounts cleanly.
	t.symlink("etc/kanto/board.d/reboot", "/usr/sbin/reboot")
	// The agent's health checks include the init's verdict (every service
	// up and stable), so agent and init never disagree about a trial boot.
	// A hard link: the agent runs only regular executables from health.d.
	t.hardlink("etc/kanto/firmware/health.d/50-init-health", "usr/sbin/init")
	if err := b.ensureKeys(); err != nil {
		return false, err
	}
	t.file("etc/kanto/firmware/keyring.pem", filepath.Join(b.cfg.KeysDir, "ca.crt"), 0o644)
	listen := b.cfg.BrokerListen
	if listen == "" {
		listen = "127.0.0.1"
	}
	t.data("etc/mosquitto/mosquitto.conf", []byte(fmt.Sprintf(mosquittoConf, listen)), 0o644)
	t.data("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nmosquitto:x:100:101::/data/mosquitto:/usr/sbin/nologin\n"), 0o644)
	t.data("etc/group", []byte("root:x:0:\ntty:x:5:\nmosquitto:x:101:\n"), 0o644)
	t.data("etc/hosts", []byte("127.0.0.1 localhost kanto\n::1 localhost\n"), 0o644)
	t.data("etc/hostname", []byte("kanto\n"), 0o644)
	t.data("etc/nsswitch.conf", []byte("passwd: files\ngroup: files\nhosts: files dns\n"), 0o644)
	t.symlink("etc/resolv.conf", "/run/resolv.conf")
	if b.cfg.UpdateManager && b.cfg.SoftwareUpdate {
		if _, err := os.Stat("/bin/busybox"); err != nil {
			return false, fmt.Errorf("/bin/busybox (busybox-static) for install scripts: %w", ErrTool)
		}
		t.file(strings.TrimPrefix(busyboxPath, "/"), "/bin/busybox", 0o755)
	}
	for dst, src := range b.cfg.Files {
		// Executables stay executable (extra tools, test programs).
		mode := os.FileMode(0o644)
		if st, err := os.Stat(src); err == nil && st.Mode()&0o111 != 0 {
			mode = 0o755
		}
		t.file(dst, src, mode)
	}
	k := newKey("rootfs").str("size", fmt.Sprint(b.cfg.SlotSize)).str("mke2fs", toolVersion("mke2fs", "-V"))
	if err := t.addTo(k); err != nil {
		return false, err
	}
	dir, hit, err := b.cache.get("rootfs", k, func(dir string) error {
		stage := filepath.Join(dir, "stage")
		if err := t.materialise(stage); err != nil {
			return err
		}
		defer os.RemoveAll(stage)
		return b.mkext4(ctx, filepath.Join(dir, "rootfs.ext4"), "kanto-rootfs", stage, b.cfg.SlotSize)
	})
	b.rootfsDir = dir
	return hit, err
}

// usrPath maps a host library path to the merged-/usr rootfs.
func usrPath(p string) string {
	p = strings.TrimPrefix(p, "/usr")
	return "usr" + p
}

// mkext4 creates an ext4 filesystem image from a directory, reproducibly
// (fixed UUID and hash seed, fake time).
func (b *build) mkext4(ctx context.Context, out, label, src string, size int64) error {
	uuid := gpt.NewGUID(label + "/" + b.cfg.Version)
	args := []string{"-q", "-F", "-t", "ext4", "-L", label, "-U", uuid,
		"-E", "root_owner=0:0,hash_seed=" + uuid, "-m", "0"}
	if src != "" {
		args = append(args, "-d", src)
	}
	args = append(args, out, fmt.Sprintf("%dk", size/1024))
	return b.run(ctx, "", []string{"E2FSPROGS_FAKE_TIME=1700000000"}, "mke2fs", args...)
}

func toolVersion(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	return strings.SplitN(string(out), "\n", 2)[0]
}

// grubModules are built into BOOTX64.EFI; nothing is loaded from disk.
var grubModules = []string{"part_gpt", "fat", "ext2", "normal", "boot", "linux", "echo", "test",
	"loadenv", "configfile", "regexp", "sleep", "reboot", "search", "serial", "terminal"}

// grubCfg adapts firmware/scripts/grub-ab.cfg (the reference
// implementation of the A/B scheme) to this image: partition numbers,
// root= values and the serial console.
func (b *build) grubCfg() ([]byte, error) {
	src := filepath.Join(b.cfg.RepoDir, "firmware", "scripts", "grub-ab.cfg")
	raw, err := os.ReadFile(src)
	if err != nil {
		return nil, err
	}
	s := string(raw)
	for _, r := range [][2]string{
		{`set KANTO_PART_A=2`, `set KANTO_PART_A=2`},
		{`set KANTO_PART_B=3`, `set KANTO_PART_B=3`},
		{`set KANTO_ROOT_A="PARTLABEL=rootfsA"`, `set KANTO_ROOT_A="PARTLABEL=` + LabelSlotA + `"`},
		{`set KANTO_ROOT_B="PARTLABEL=rootfsB"`, `set KANTO_ROOT_B="PARTLABEL=` + LabelSlotB + `"`},
		{`kanto.slot=$SLOT`, `kanto.slot=$SLOT console=ttyS0,115200 quiet`},
	} {
		if !strings.Contains(s, r[0]) {
			return nil, fmt.Errorf("%s no longer contains %q; update images/builder: %w", src, r[0], ErrConfig)
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	return []byte("# Generated by kanto image build from firmware/scripts/grub-ab.cfg.\n" + s), nil
}

// InitialEnv is the grubenv of a fresh image (firmware/BOOTENV.md).
var InitialEnv = map[string]string{"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "0", "B_TRY": "0"}

func (b *build) esp(ctx context.Context) (bool, error) {
	cfg, err := b.grubCfg()
	if err != nil {
		return false, err
	}
	env, err := bootenv.EncodeGrubEnv(InitialEnv, 1024)
	if err != nil {
		return false, err
	}
	k := newKey("esp").str("cfg", string(cfg)).str("env", string(env)).
		str("modules", strings.Join(grubModules, " ")).str("size", fmt.Sprint(b.cfg.ESPSize))
	if _, err := k.file("grub-kernel", "/usr/lib/grub/x86_64-efi/kernel.img"); err != nil {
		return false, fmt.Errorf("grub-efi-amd64-bin: %w: %w", ErrTool, err)
	}
	dir, hit, err := b.cache.get("esp", k, func(dir string) error {
		efi := filepath.Join(dir, "BOOTX64.EFI")
		args := append([]string{"-O", "x86_64-efi", "-o", efi, "-p", "/EFI/BOOT"}, grubModules...)
		if err := b.run(ctx, dir, nil, "grub-mkimage", args...); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "grub.cfg"), cfg, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "grubenv"), env, 0o644); err != nil {
			return err
		}
		img := filepath.Join(dir, "esp.vfat")
		// FAT16: FAT32 needs at least 65525 clusters, more than a small ESP has.
		if err := b.run(ctx, dir, nil, "mkfs.vfat", "-C", "-F", "16", "-n", "ESP", "-i", "4b414e54", img, fmt.Sprint(b.cfg.ESPSize/1024)); err != nil {
			return err
		}
		mt := []string{"MTOOLS_SKIP_CHECK=1"}
		if err := b.run(ctx, dir, mt, "mmd", "-i", img, "::/EFI", "::/EFI/BOOT"); err != nil {
			return err
		}
		return b.run(ctx, dir, mt, "mcopy", "-i", img, efi, filepath.Join(dir, "grub.cfg"), filepath.Join(dir, "grubenv"), "::/EFI/BOOT/")
	})
	b.espDir = dir
	return hit, err
}

func (b *build) data(ctx context.Context) (bool, error) {
	k := newKey("data").str("size", fmt.Sprint(b.cfg.DataSize)).str("mke2fs", toolVersion("mke2fs", "-V"))
	dir, hit, err := b.cache.get("data", k, func(dir string) error {
		return b.mkext4(ctx, filepath.Join(dir, "data.ext4"), LabelData, "", b.cfg.DataSize)
	})
	b.dataDir = dir
	return hit, err
}

// Layout returns the partitions of a disk built with cfg's sizes.
func Layout(espSize, slotSize, dataSize int64) (parts []Part, diskSize int64) {
	off := int64(MiB)
	for _, p := range []Part{{LabelESP, 0, espSize}, {LabelSlotA, 0, slotSize}, {LabelSlotB, 0, slotSize}, {LabelData, 0, dataSize}} {
		p.Start = off
		parts = append(parts, p)
		off += p.Size
	}
	return parts, off + MiB
}

func (b *build) disk(ctx context.Context) (bool, error) {
	parts, size := Layout(b.cfg.ESPSize, b.cfg.SlotSize, b.cfg.DataSize)
	b.layout, b.res.Layout, b.res.DiskSize = parts, parts, size
	srcs := map[string]string{
		LabelESP:   filepath.Join(b.espDir, "esp.vfat"),
		LabelSlotA: filepath.Join(b.rootfsDir, "rootfs.ext4"),
		LabelData:  filepath.Join(b.dataDir, "data.ext4"),
	}
	// The inputs are cache entries, named by their own keys.
	k := newKey("disk").str("esp", b.espDir).str("rootfs", b.rootfsDir).str("data", b.dataDir).str("size", fmt.Sprint(size))
	dir, hit, err := b.cache.get("disk", k, func(dir string) error {
		p := filepath.Join(dir, "disk.img")
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			return err
		}
		tb := &gpt.Table{DiskSize: size, DiskGUID: gpt.NewGUID("kanto-disk/" + b.cfg.Version)}
		for _, pt := range parts {
			typ := gpt.TypeLinuxFS
			if pt.Label == LabelESP {
				typ = gpt.TypeEFISystem
			}
			tb.Partitions = append(tb.Partitions, gpt.Partition{Name: pt.Label, Type: typ, Start: pt.Start, Size: pt.Size})
			if src := srcs[pt.Label]; src != "" {
				if err := copySparse(f, pt.Start, pt.Size, src); err != nil {
					return err
				}
			}
		}
		if err := tb.Write(f); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		m, err := bmap.Create(f, 4096)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "disk.bmap"), m.Marshal(), 0o644)
	})
	b.diskDir = dir
	return hit, err
}

// copySparse copies the data extents of src into dst at off, keeping holes
// as holes (they are "don't care" blocks of the filesystem).
func copySparse(dst *os.File, off, limit int64, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if st.Size() > limit {
		return fmt.Errorf("%s is %d bytes, partition %d: %w", src, st.Size(), limit, ErrConfig)
	}
	exts, err := bmap.Extents(in, st.Size())
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for _, e := range exts {
		w := io.NewOffsetWriter(dst, off+e[0])
		if _, err := io.CopyBuffer(w, io.NewSectionReader(in, e[0], e[1]-e[0]), buf); err != nil {
			return err
		}
	}
	return nil
}

// ensureKeys creates a development signing PKI when KeysDir has none.
func (b *build) ensureKeys() error {
	if _, err := os.Stat(filepath.Join(b.cfg.KeysDir, "ca.crt")); err == nil {
		return nil
	}
	return bundle.GenerateDevPKI(b.cfg.KeysDir, "ecdsa", time.Now())
}

func (b *build) bundle(ctx context.Context) (bool, error) {
	if b.cfg.NoBundle {
		return true, nil
	}
	k := newKey("bundle").str("rootfs", b.rootfsDir).str("version", b.cfg.Version).str("compatible", b.cfg.Compatible)
	for _, f := range []string{"signing.key", "signing.crt"} {
		if _, err := k.file(f, filepath.Join(b.cfg.KeysDir, f)); err != nil {
			return false, err
		}
	}
	dir, hit, err := b.cache.get("bundle", k, func(dir string) error {
		signer, err := bundle.LoadKeySigner(filepath.Join(b.cfg.KeysDir, "signing.key"), filepath.Join(b.cfg.KeysDir, "signing.crt"))
		if err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(dir, "update.kfw"))
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = bundle.Create(ctx, f, signer, bundle.CreateOptions{
			Compatible: []string{b.cfg.Compatible}, Version: b.cfg.Version,
			Description: "Kanto image root filesystem", Compression: "zstd", TempDir: dir,
		}, []bundle.Source{{Class: "rootfs", Path: filepath.Join(b.rootfsDir, "rootfs.ext4")}})
		if err != nil {
			return err
		}
		return f.Close()
	})
	b.bundleDir = dir
	return hit, err
}

// output copies the results from the cache into OutDir (sparse copies, so
// the cache is never modified by whoever boots or provisions the output).
func (b *build) output(context.Context) (bool, error) {
	if err := os.MkdirAll(b.cfg.OutDir, 0o755); err != nil {
		return false, err
	}
	type item struct{ src, dst string }
	items := []item{
		{filepath.Join(b.diskDir, "disk.img"), "disk.img"},
		{filepath.Join(b.diskDir, "disk.bmap"), "disk.bmap"},
		{filepath.Join(b.rootfsDir, "rootfs.ext4"), "rootfs.ext4"},
	}
	if !b.cfg.NoBundle {
		items = append(items, item{filepath.Join(b.bundleDir, "update.kfw"), "update.kfw"})
	}
	for _, it := range items {
		dst := filepath.Join(b.cfg.OutDir, it.dst)
		if err := CopySparseFile(it.src, dst); err != nil {
			return false, err
		}
	}
	r := b.res
	r.Disk = filepath.Join(b.cfg.OutDir, "disk.img")
	r.Bmap = filepath.Join(b.cfg.OutDir, "disk.bmap")
	r.Rootfs = filepath.Join(b.cfg.OutDir, "rootfs.ext4")
	if !b.cfg.NoBundle {
		r.Bundle = filepath.Join(b.cfg.OutDir, "update.kfw")
	}
	if st, err := os.Stat(r.Rootfs); err == nil {
		r.RootfsSize = st.Size()
	}
	raw, err := os.ReadFile(r.Bmap)
	if err != nil {
		return false, err
	}
	m, err := bmap.Parse(raw)
	if err != nil {
		return false, err
	}
	r.DiskAllocated = m.MappedBlocks() * m.BlockSize
	for _, step := range []string{"initramfs", "rootfs", "esp", "data", "disk", "bundle"} {
		b.cache.prune(step, b.initramfsDir, b.rootfsDir, b.espDir, b.dataDir, b.diskDir, b.bundleDir)
	}
	info, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return false, err
	}
	return false, os.WriteFile(filepath.Join(b.cfg.OutDir, "build.json"), append(info, '\n'), 0o644)
}

// CopySparseFile copies src to dst (replacing it), keeping holes.
func CopySparseFile(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := f.Truncate(st.Size()); err != nil {
		f.Close()
		return err
	}
	if err := copySparse(f, 0, st.Size(), src); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
