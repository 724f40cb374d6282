//go:build !linux

package board

import (
	"context"
	"errors"
)

type realReboot struct{}

func (realReboot) sync()                                 {}
func (realReboot) systemctlReboot(context.Context) error { return errors.ErrUnsupported }
func (realReboot) reboot() error                         { return errors.ErrUnsupported }
