package layergen

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The layer's boot scripts are derived from the firmware's reference
// scripts (firmware/scripts, the one source of truth for the A/B logic):
// the GRUB config gets a few line edits for the Yocto image, the U-Boot
// script gets a per-machine prelude that sets the layout variables the
// reference script leaves to "the Yocto layer".

const (
	grubSource  = "firmware/scripts/grub-ab.cfg"
	ubootSource = "firmware/scripts/uboot-ab.cmd"
	// GrubCfg is found by wic through the bootloader --configfile of
	// meta-kanto/files/wic/kanto-ab-qemux86-64.wks.
	GrubCfg = "meta-kanto/files/wic/kanto-grub.cfg"
)

// lineEdit replaces one exact line of the reference script; New == "" deletes
// it. Generation fails unless Old occurs exactly once, so a change of the
// reference script is never silently half-applied.
type lineEdit struct{ Old, New string }

var grubEdits = []lineEdit{
	// kanto-image has no initramfs: the kernel mounts root= itself.
	{Old: "initrd ($DISK,gpt$P)/boot/initramfs.cpio", New: ""},
	// A serial console for runqemu nographic.
	{
		Old: "linux ($DISK,gpt$P)/boot/vmlinuz root=$R rootwait ro panic=5 kanto.slot=$SLOT",
		New: "linux ($DISK,gpt$P)/boot/vmlinuz root=$R rootwait ro panic=5 console=ttyS0,115200 console=tty0 kanto.slot=$SLOT",
	},
}

// ubootPreludes are the layout variables per U-Boot machine (see the wic
// layouts in meta-kanto/files/wic and the fstab in kanto-image.bb).
var ubootPreludes = map[string][]string{
	"qemuarm64": {
		`setenv kanto_dev "virtio 0"`,
		`setenv kanto_part_A 2`,
		`setenv kanto_part_B 3`,
		`setenv kanto_root_A /dev/vda2`,
		`setenv kanto_root_B /dev/vda3`,
		`setenv kanto_kernel /boot/Image`,
		`setenv bootargs "console=ttyAMA0,115200"`,
	},
	"raspberrypi4-64": {
		`setenv kanto_dev "mmc 0"`,
		`setenv kanto_part_A 2`,
		`setenv kanto_part_B 3`,
		`setenv kanto_root_A /dev/mmcblk0p2`,
		`setenv kanto_root_B /dev/mmcblk0p3`,
		`setenv kanto_kernel /boot/Image`,
		`setenv bootargs "console=ttyS0,115200 console=tty1"`,
	},
}

// UBootScript is the generated boot script of machine.
func UBootScript(machine string) string {
	return fmt.Sprintf("meta-kanto/recipes-bsp/kanto-boot/files/kanto-boot-%s.cmd", machine)
}

// BootScripts returns the generated boot scripts, keyed by path relative to
// root.
func BootScripts(root string) (map[string][]byte, error) {
	out := map[string][]byte{}
	grub, err := os.ReadFile(filepath.Join(root, grubSource))
	if err != nil {
		return nil, err
	}
	edited, err := applyEdits(string(grub), grubEdits)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", grubSource, err)
	}
	out[GrubCfg] = []byte(generatedHeader(grubSource) + edited)

	uboot, err := os.ReadFile(filepath.Join(root, ubootSource))
	if err != nil {
		return nil, err
	}
	for machine, prelude := range ubootPreludes {
		var b bytes.Buffer
		b.WriteString(generatedHeader(ubootSource))
		fmt.Fprintf(&b, "# Layout of %s (meta-kanto/files/wic/kanto-ab-%s.wks).\n", machine, machine)
		for _, l := range prelude {
			b.WriteString(l + "\n")
		}
		b.WriteString("\n")
		b.Write(uboot)
		out[UBootScript(machine)] = b.Bytes()
	}
	return out, nil
}

func generatedHeader(src string) string {
	return "# Generated from " + src + " by `go run ./tools/yoctogen`; do not edit.\n"
}

func applyEdits(text string, edits []lineEdit) (string, error) {
	lines := strings.SplitAfter(text, "\n")
	for _, e := range edits {
		n := 0
		for i, l := range lines {
			if strings.TrimRight(l, "\n") != e.Old {
				continue
			}
			n++
			if e.New == "" {
				lines[i] = ""
			} else {
				lines[i] = e.New + "\n"
			}
		}
		if n != 1 {
			return "", fmt.Errorf("line %q occurs %d times, want once: update tools/yoctogen/bootscripts.go", e.Old, n)
		}
	}
	return strings.Join(lines, ""), nil
}
