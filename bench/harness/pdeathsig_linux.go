package harness

import (
	"os/exec"
	"syscall"
)

// setPdeathsig asks the kernel to send sig to the child when the thread
// that started it exits. The Go runtime never ends its threads (apart from
// those of goroutines that lock one and exit), so in practice this is when
// the program dies.
func setPdeathsig(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = sig
}
