//go:build unix

package hostfs

import (
	"errors"
	"os"
	"syscall"
)

// openFlags are the flags of Open: read-only, no symbolic link in the last
// element, no wait on a FIFO.
const openFlags = os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC

// isSymlinkError reports the error of O_NOFOLLOW on a symbolic link.
func isSymlinkError(err error) bool { return errors.Is(err, syscall.ELOOP) }
