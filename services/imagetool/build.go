// Package imagetool is the command-line face of the image tooling:
// `kanto image build|provision|qemu|info`, `kanto flash` and
// `kanto provision`. The work is done by images/... and init/...; this
// package only turns flags into their options.
package imagetool

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kantofw/kanto/images/builder"
	"github.com/kantofw/kanto/init/initcfg"
	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/config"
)

// ImageMain is `kanto image <subcommand>`.
func ImageMain(ctx context.Context, env *cli.Env, args []string) error {
	if len(args) == 0 {
		imageUsage(env.Stderr)
		return cli.Usagef("missing subcommand")
	}
	switch args[0] {
	case "build":
		return buildMain(ctx, env, args[1:])
	case "provision":
		return imageProvisionMain(ctx, env, args[1:])
	case "qemu":
		return qemuMain(ctx, env, args[1:])
	case "bare-initramfs":
		if len(args) != 2 {
			return cli.Usagef("usage: kanto image bare-initramfs OUT")
		}
		f, err := os.Create(args[1])
		if err != nil {
			return err
		}
		defer f.Close()
		if err := builder.WriteBareInitramfs(f); err != nil {
			return err
		}
		return f.Close()
	case "help", "-h", "--help":
		imageUsage(env.Stdout)
		return nil
	}
	imageUsage(env.Stderr)
	return cli.Usagef("unknown subcommand %q", args[0])
}

func imageUsage(w io.Writer) {
	fmt.Fprint(w, `usage: kanto image <subcommand> [flags]

  build      build the A/B disk image, its block map and an update bundle (cached)
  provision  write a device identity into the data partition of a built image
  qemu       boot an image in QEMU (OVMF + GRUB, TCG) on the serial console,
             or until a console line matches (-until, for scripts)
  bare-initramfs OUT  write the initramfs of the bare kernel+init boot (benchmarks)

Run 'kanto image <subcommand> -h' for its flags.
`)
}

func buildMain(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, "image build")
	var cfg builder.Config
	var services, health []string
	var jsonOut, quiet bool
	var slotMiB, dataMiB int64
	fs.StringVar(&cfg.OutDir, "out", "", "output directory (default <repo>/out/image)")
	fs.StringVar(&cfg.CacheDir, "cache", "", "build cache directory (default <repo>/out/cache)")
	fs.StringVar(&cfg.RepoDir, "repo", "", "source tree to build the Go binaries from (default: the go.mod above the working directory)")
	fs.StringVar(&cfg.Version, "version", "dev", "release string of the slot (shown at boot, put in the bundle)")
	fs.StringVar(&cfg.KantoBinary, "kanto-bin", "", "prebuilt kanto binary for the image (default: build ./services/cmd/kanto)")
	fs.StringVar(&cfg.KeysDir, "keys", "", "bundle signing PKI directory (default <repo>/out/keys, generated when missing)")
	fs.StringVar(&cfg.KernelRoot, "kernel-root", "", "directory with boot/vmlinuz-KVER and lib/modules/KVER (default: the host's, else downloaded)")
	fs.Int64Var(&slotMiB, "slot-mib", 192, "size of each root filesystem slot in MiB")
	fs.Int64Var(&dataMiB, "data-mib", 64, "size of the data partition in MiB")
	fs.Var(&config.StringList{Values: &services}, "service", "a service to supervise, as JSON like {\"name\":\"suite-connector\",\"exec\":[\"/usr/bin/kanto\",\"suite-connector\"],\"after\":[\"mosquitto\"],\"ready\":\"notify\"} (repeatable)")
	fs.Var(&config.StringList{Values: &health}, "health-cmd", "health check command word (repeatable, in order); the boot is unhealthy when it fails")
	fs.BoolVar(&cfg.Minimal, "minimal", false, "only Mosquitto (plus -service), no suite-connector or OTA agent; the init commits trial boots itself")
	fs.BoolVar(&cfg.UpdateManager, "update-manager", false, "run kanto update-manager and kanto fw-update-agent (update campaigns from the cloud) instead of kanto fw agent")
	fs.BoolVar(&cfg.SoftwareUpdate, "software-update", false, "with -update-manager: also the software domain (kanto software-update; install scripts run by the host's /bin/busybox)")
	fs.IntVar(&cfg.CloudWithin, "cloud-within", 0, "OTA health check: connected to the cloud within this many seconds (0: no such check)")
	fs.StringVar(&cfg.BrokerListen, "broker-listen", "127.0.0.1", "address the device's Mosquitto listens on; 0.0.0.0 lets the host reach it through 'kanto image qemu -hostfwd tcp::PORT-:1883' (tests and demos only: anonymous access)")
	fs.BoolVar(&cfg.NoBundle, "no-bundle", false, "do not create the update bundle")
	fs.BoolVar(&cfg.BrokenInitramfs, "broken-initramfs", false, "test image whose kernel panics at boot")
	fs.BoolVar(&jsonOut, "json", false, "print the build result as JSON")
	fs.BoolVar(&quiet, "q", false, "no progress lines")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return cli.Usagef("unexpected arguments %q", fs.Args())
	}
	cfg.SlotSize, cfg.DataSize = slotMiB*builder.MiB, dataMiB*builder.MiB
	for _, s := range services {
		var svc initcfg.Service
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&svc); err != nil {
			return cli.Usagef("-service %s: %v", s, err)
		}
		cfg.Services = append(cfg.Services, svc)
	}
	cfg.Health.Command = health
	if !quiet && !jsonOut {
		cfg.Progress = env.Stderr
	}
	res, err := builder.Build(ctx, cfg)
	if err != nil {
		return err
	}
	if jsonOut {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	cachedSteps := 0
	for _, s := range res.Steps {
		if s.Cached {
			cachedSteps++
		}
	}
	fmt.Fprintf(env.Stdout, "disk   %s (%d MiB, %d MiB with data)\nbmap   %s\nrootfs %s\n", res.Disk, res.DiskSize>>20, res.DiskAllocated>>20, res.Bmap, res.Rootfs)
	if res.Bundle != "" {
		fmt.Fprintf(env.Stdout, "bundle %s\n", res.Bundle)
	}
	fmt.Fprintf(env.Stdout, "kernel %s; built in %.1fs (%d of %d steps cached)\n", res.KernelVersion, res.Duration.Seconds(), cachedSteps, len(res.Steps))
	return nil
}
