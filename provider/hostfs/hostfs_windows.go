package hostfs

import (
	"fmt"
	"os"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// openFlags are the flags of Open. Windows has no FIFOs in the file system
// name space, and Open refuses anything but a regular file after opening.
const openFlags = os.O_RDONLY

func isSymlinkError(error) bool { return false }

// AsUser is not available on Windows: a client's paths cannot be opened
// with its rights, so only its streams are accepted.
func AsUser(u User) (FS, error) {
	return nil, fmt.Errorf("paths on the daemon host are not supported on Windows; stream the archive instead: %w", errdefs.ErrNotImplemented)
}

// ProcessGroups is not available on Windows.
func ProcessGroups(pid int32, uid uint32) ([]uint32, error) {
	return nil, fmt.Errorf("process groups: %w", errdefs.ErrNotImplemented)
}
