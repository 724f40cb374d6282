//go:build !unix

package ota

import "os/exec"

// killGroupOnCancel: without process groups the default (kill the process)
// applies.
func killGroupOnCancel(*exec.Cmd) {}
