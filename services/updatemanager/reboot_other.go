//go:build !linux

package updatemanager

import (
	"context"
	"errors"
	"log/slog"
)

type noReboot struct{}

func defaultRebooter(*slog.Logger) Rebooter { return noReboot{} }

func (noReboot) Reboot(context.Context) error {
	return errors.New("reboot is not supported on this OS")
}
