//go:build !linux

package harness

import (
	"os/exec"
	"syscall"
)

// setPdeathsig does nothing where the kernel has no parent-death signal.
func setPdeathsig(*exec.Cmd, syscall.Signal) {}
