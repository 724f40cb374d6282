package imagetool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/kantofw/kanto/images/qemu"
	"github.com/kantofw/kanto/services/internal/cli"
	"github.com/kantofw/kanto/services/internal/config"
)

// qemuMain is `kanto image qemu [flags] [IMAGE]`: boot a copy of the image
// (or the image itself with -in-place) on the terminal's serial console.
func qemuMain(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet(env, "image qemu")
	var o qemu.Options
	var fwd []string
	var state string
	var inPlace, fresh, printArgs bool
	fs.StringVar(&state, "state", "", "working copy the VM writes to (default <image dir>/../qemu/disk.img); kept between runs")
	fs.BoolVar(&fresh, "fresh", false, "start from a new copy of the image (discard the working copy)")
	fs.BoolVar(&inPlace, "in-place", false, "boot the image file itself (it is modified)")
	fs.IntVar(&o.MemMiB, "mem", 512, "guest memory in MiB")
	fs.BoolVar(&o.NoNet, "no-net", false, "no network card")
	fs.Var(&config.StringList{Values: &fwd}, "hostfwd", "user-net forward like tcp::2222-:22 (repeatable)")
	fs.Var(&config.StringList{Values: &o.Extra}, "qemu-arg", "extra QEMU argument (repeatable, in order)")
	fs.StringVar(&o.OVMF, "ovmf", qemu.DefaultOVMF, "UEFI firmware")
	fs.BoolVar(&printArgs, "print", false, "print the QEMU command line instead of running it")
	until := fs.String("until", "", "run without a terminal: stop (power cut) at the first console line matching this regexp and print the time it took")
	timeout := fs.Duration("timeout", 60*time.Second, "with -until: give up after this long (exit 1)")
	verbose := fs.Bool("v", false, "with -until: copy the console to stderr")
	timeline := fs.Bool("timeline", false, "with -until: print the boot milestones as they happen (GRUB's slot choice, the init's KANTO-EVENT lines, kernel panics)")
	fs.StringVar(&o.Kernel, "kernel", "", "boot this kernel directly (no OVMF/GRUB; the image is optional)")
	fs.StringVar(&o.Initrd, "initrd", "", "initramfs for -kernel")
	fs.StringVar(&o.Append, "append", "console=ttyS0 quiet", "kernel command line for -kernel")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	img := "out/image/disk.img"
	if fs.NArg() == 1 {
		img = fs.Arg(0)
	} else if fs.NArg() > 1 {
		return cli.Usagef("at most one image")
	} else if o.Kernel != "" {
		img = ""
	}
	o.HostFwd = fwd
	o.Disk = img
	if !inPlace && img != "" {
		if state == "" {
			state = filepath.Join(filepath.Dir(filepath.Dir(img)), "qemu", "disk.img")
		}
		if _, err := os.Stat(state); fresh || err != nil {
			if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
				return err
			}
			if err := qemu.CopyDisk(img, state); err != nil {
				return err
			}
		}
		o.Disk = state
	}
	if printArgs {
		fmt.Fprintln(env.Stdout, qemu.DefaultBinary, qemu.Args(o))
		return nil
	}
	if *until != "" {
		re, err := regexp.Compile(*until)
		if err != nil {
			return cli.Usagef("-until: %v", err)
		}
		if *verbose {
			o.Console = env.Stderr
		}
		if *timeline {
			o.OnLine = func(l qemu.Line) {
				if milestone.MatchString(l.Text) {
					fmt.Fprintf(env.Stdout, "%7.2fs  %s\n", l.At.Seconds(), l.Text)
				}
			}
		}
		vm, err := qemu.Start(ctx, o)
		if err != nil {
			return err
		}
		defer vm.Kill()
		l, err := vm.WaitFor(ctx, re, *timeout)
		if err != nil {
			return &cli.ExitError{Code: 1, Err: err}
		}
		fmt.Fprintf(env.Stdout, "%.2f %s\n", l.At.Seconds(), l.Text)
		return nil
	}
	o.Interactive = true
	fmt.Fprintf(env.Stderr, "qemu: booting %s (TCG, about 10 s to the services; Ctrl-A X quits)\n", o.Disk)
	vm, err := qemu.Start(ctx, o)
	if err != nil {
		return err
	}
	<-vm.Done()
	return vm.Wait(0)
}

// milestone matches the console lines of a boot's timeline.
var milestone = regexp.MustCompile(`KANTO-GRUB|KANTO-EVENT|Kernel panic`)
