// Package builder builds the Kanto firmware disk image without root or loop
// devices: a GPT disk with an EFI system partition (GRUB x86_64-efi, the
// A/B grub.cfg of firmware/scripts, the grubenv), two root filesystem slots
// (ext4 made with mke2fs -d; slot A filled, slot B empty until the first
// update) and a data partition, plus a block map of the disk and a signed
// update bundle of the same root filesystem.
//
// Every step's outputs are cached under a key made of the SHA-256 of its
// inputs, so a rebuild with nothing changed only re-links the Go binaries
// and copies the results.
package builder

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kantofw/kanto/init/initcfg"
)

// Errors, checked with errors.Is.
var (
	// ErrTool means a host program the build needs is missing.
	ErrTool = errors.New("build tool missing")
	// ErrConfig means an unusable build configuration.
	ErrConfig = errors.New("invalid image configuration")
)

// Partition labels of the disk; the init, grub.cfg and slots.json use them.
const (
	LabelESP   = "esp"
	LabelSlotA = "rootfsA"
	LabelSlotB = "rootfsB"
	LabelData  = "data"
)

const MiB = 1 << 20

// Config describes an image. Zero values take the documented defaults.
type Config struct {
	// RepoDir is the module root the Go binaries are built from (default:
	// the nearest parent of the working directory with go.mod).
	RepoDir string
	// OutDir receives disk.img, disk.bmap, rootfs.ext4, update.kfw and
	// build.json (default RepoDir/out/image).
	OutDir string
	// CacheDir holds cached step outputs (default RepoDir/out/cache).
	CacheDir string
	// Version is the slot's release string (default "dev").
	Version string
	// Compatible is the board name in slots.json and the bundle (default
	// qemu-x86_64).
	Compatible string
	// KernelRoot holds boot/vmlinuz-KVER and lib/modules/KVER: "/" for the
	// host's installed linux-image-amd64 (default when present), otherwise
	// the package is downloaded with apt-get and unpacked in the cache.
	KernelRoot    string
	KernelVersion string
	// Modules are loaded by the initramfs, with their dependencies
	// (default DefaultModules).
	Modules []string
	// Minimal leaves out the Kanto services (suite-connector and the
	// firmware update agent): the slot runs Mosquitto plus Services, and the
	// init itself commits a healthy trial boot. Without Minimal the OTA agent
	// (kanto fw agent) commits or rolls back, and the init does not.
	Minimal bool
	// CloudWithin, without Minimal, makes "connected to the cloud within
	// this many seconds" one of the OTA agent's health checks (0: none).
	CloudWithin int
	// UpdateManager, without Minimal, runs the update campaign path
	// instead of kanto fw agent: kanto update-manager (Ditto UpdateManager
	// feature, firmware domain) and kanto fw-update-agent.
	UpdateManager bool
	// SoftwareUpdate, with UpdateManager, adds the software domain: kanto
	// software-update running install scripts with the host's static
	// busybox (/bin/busybox, Debian's busybox-static) as their shell.
	SoftwareUpdate bool
	// BrokerListen is the address Mosquitto listens on (default
	// 127.0.0.1). Tests set 0.0.0.0 to reach the device's broker through a
	// QEMU host forward; never ship that: the broker allows anonymous
	// clients.
	BrokerListen string
	// Services run under the init after the built-in ones.
	Services []initcfg.Service
	// Health overrides the init's health settings when non-zero.
	Health initcfg.Health
	// KantoBinary is a prebuilt kanto binary (linux/amd64, static) to use
	// instead of building ./services/cmd/kanto from RepoDir.
	KantoBinary string
	// Files are extra files for the root filesystem: destination → host path
	// (mode 0755 when the host file is executable, else 0644).
	Files map[string]string
	// Sizes in bytes (defaults: ESP 32 MiB, slot 192 MiB, data 64 MiB).
	ESPSize, SlotSize, DataSize int64
	// KeysDir holds the bundle signing PKI (ca.crt, signing.key,
	// signing.crt); a development PKI is generated there when missing
	// (default RepoDir/out/keys). Its ca.crt becomes the device keyring.
	KeysDir string
	// NoBundle skips the update bundle.
	NoBundle bool
	// BrokenInitramfs replaces the initramfs with garbage, so the kernel
	// panics at boot (tests of bootloader fallback).
	BrokenInitramfs bool
	// Progress receives one line per step (nil: silent).
	Progress io.Writer
	// Log receives the output of the tools the build runs (nil: discarded
	// unless a tool fails).
	Log io.Writer
}

// DefaultModules are what a QEMU q35/pc guest with virtio disk and NIC, the
// i6300esb watchdog and vfat/ext4 needs from the Debian kernel.
var DefaultModules = []string{
	"virtio_pci", "virtio_blk", "virtio_net", "virtio_rng",
	"ext4", "crc32c_generic", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "i6300esb",
	"button", "evdev", // the ACPI power button, read by the init
}

// Result describes a finished build.
type Result struct {
	Disk, Bmap, Rootfs, Bundle string // paths in OutDir (Bundle "" with NoBundle)
	KernelVersion              string
	Kernel                     string // the vmlinuz in the slots (host path)
	DiskSize                   int64  // apparent size
	DiskAllocated              int64  // bytes with data (mapped blocks)
	RootfsSize                 int64
	Layout                     []Part
	Steps                      []Step
	Duration                   time.Duration
}

// Part is one partition of the disk.
type Part struct {
	Label       string
	Start, Size int64
}

// Step is one build step's outcome.
type Step struct {
	Name     string
	Cached   bool
	Duration time.Duration
}

// RepoDir is the module root the Go binaries are built from: the nearest
// directory with a go.mod at or above the working directory.
func RepoDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s: %w", wd, ErrConfig)
		}
	}
}

func (c *Config) defaults() error {
	if c.RepoDir == "" {
		d, err := RepoDir()
		if err != nil {
			return err
		}
		c.RepoDir = d
	}
	if c.OutDir == "" {
		c.OutDir = filepath.Join(c.RepoDir, "out", "image")
	}
	if c.CacheDir == "" {
		c.CacheDir = filepath.Join(c.RepoDir, "out", "cache")
	}
	if c.KeysDir == "" {
		c.KeysDir = filepath.Join(c.RepoDir, "out", "keys")
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Compatible == "" {
		c.Compatible = "qemu-x86_64"
	}
	if c.Modules == nil {
		c.Modules = DefaultModules
	}
	if c.ESPSize == 0 {
		c.ESPSize = 32 * MiB
	}
	if c.SlotSize == 0 {
		c.SlotSize = 192 * MiB
	}
	if c.DataSize == 0 {
		c.DataSize = 64 * MiB
	}
	for _, s := range []int64{c.ESPSize, c.SlotSize, c.DataSize} {
		if s%MiB != 0 || s < 8*MiB {
			return fmt.Errorf("partition size %d: whole MiB, at least 8: %w", s, ErrConfig)
		}
	}
	return nil
}

// Build builds the image described by cfg.
func Build(ctx context.Context, cfg Config) (*Result, error) {
	start := time.Now()
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	b := &build{cfg: cfg, cache: &cache{dir: cfg.CacheDir}, res: &Result{}}
	steps := []struct {
		name string
		run  func(context.Context) (bool, error)
	}{
		{"kanto-init", b.goInit},
		{"kanto", b.goKanto},
		{"kernel", b.kernel},
		{"initramfs", b.initramfs},
		{"rootfs", b.rootfs},
		{"esp", b.esp},
		{"data", b.data},
		{"disk", b.disk},
		{"bundle", b.bundle},
		{"output", b.output},
	}
	for i, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t := time.Now()
		cached, err := s.run(ctx)
		if err != nil {
			return nil, fmt.Errorf("step %s: %w", s.name, err)
		}
		d := time.Since(t)
		b.res.Steps = append(b.res.Steps, Step{Name: s.name, Cached: cached, Duration: d})
		if cfg.Progress != nil {
			state := "done"
			if cached {
				state = "cached"
			}
			fmt.Fprintf(cfg.Progress, "image: [%2d/%d] %-10s %-6s %6.1fs\n", i+1, len(steps), s.name, state, d.Seconds())
		}
	}
	b.res.Duration = time.Since(start)
	return b.res, nil
}

func hashBytes(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
