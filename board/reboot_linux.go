package board

import (
	"context"
	"os/exec"
	"syscall"
)

type realReboot struct{}

func (realReboot) sync() { syscall.Sync() }

func (realReboot) systemctlReboot(ctx context.Context) error {
	return exec.CommandContext(ctx, "systemctl", "reboot").Run()
}

func (realReboot) reboot() error { return syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART) }
