package updatemanager

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"syscall"
)

// sysrqReboot is upstream's reboot (UM:updatem/orchestration/reboot_linux.go):
// "1" to /proc/sys/kernel/sysrq and "b" to /proc/sysrq-trigger (/wproc when
// /proc is missing, paths overridable with FILE_SYS_RQ and
// FILE_SYS_RQ_TRIGGER), else sync and reboot(2). It is the fallback when no
// board hook is wired in.
type sysrqReboot struct{ log *slog.Logger }

func defaultRebooter(log *slog.Logger) Rebooter { return sysrqReboot{log: log} }

func (r sysrqReboot) Reboot(context.Context) error {
	root := "/proc"
	if _, err := os.Stat(root); err != nil {
		root = "/wproc"
	}
	sysrq := envOr("FILE_SYS_RQ", root+"/sys/kernel/sysrq")
	trigger := envOr("FILE_SYS_RQ_TRIGGER", root+"/sysrq-trigger")
	if sysrq != "" && trigger != "" {
		if err := os.WriteFile(sysrq, []byte("1"), 0); err == nil {
			if err := os.WriteFile(trigger, []byte("b"), 0); err == nil {
				return nil
			}
		}
		r.log.Warn("sysrq reboot failed, using reboot(2)")
	}
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}

func envOr(k, def string) string {
	if v, ok := os.LookupEnv(k); ok {
		return v
	}
	return def
}
