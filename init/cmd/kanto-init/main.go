// Command kanto-init is the init of the Kanto firmware image. Built static
// (CGO_ENABLED=0), the same binary is:
//
//   - /init in the initramfs (stage 1: modules, root, switch_root),
//   - /sbin/init in each slot (stage 2: PID 1 with services and health),
//   - /sbin/reboot and /sbin/poweroff in each slot (ask PID 1 to stop),
//   - .../health.d/50-init-health (a health check of the OTA agent that waits
//     for the init's verdict on this boot).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kantofw/kanto/init/event"
	"github.com/kantofw/kanto/init/initstatus"
	"github.com/kantofw/kanto/init/pid1"
	"golang.org/x/sys/unix"
)

func main() {
	base := filepath.Base(os.Args[0])
	if strings.HasSuffix(base, "init-health") {
		// A health check of the OTA agent (health.d): wait for the init's
		// verdict on this boot.
		if err := initstatus.WaitHealth(context.Background(), initstatus.Path); err != nil {
			fmt.Fprintln(os.Stderr, "init health:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	switch base {
	case "reboot":
		stop(pid1.ActionReboot)
	case "poweroff", "halt":
		stop(pid1.ActionPowerOff)
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "kanto-init: must run as PID 1 (or be invoked as reboot/poweroff)")
		os.Exit(2)
	}
	con := pid1.NewConsole(os.Stdout)
	log := slog.New(slog.NewTextHandler(con, &slog.HandlerOptions{Level: slog.LevelInfo})).With("proc", "init")
	if pid1.IsStage1() {
		err := pid1.Stage1(context.Background(), log, con)
		// Stage1 only returns on failure. Without a root there is nothing
		// to run: reboot, and let the bootloader count the attempt.
		con.Event(event.Fatal, "stage", "1", "err", fmt.Sprint(err))
		time.Sleep(3 * time.Second)
		unix.Sync()
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		select {}
	}
	pid1.Stage2(log, con)
}

func stop(a pid1.Action) {
	if err := pid1.RequestStop(a); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", a, err)
		os.Exit(1)
	}
	os.Exit(0)
}
