//go:build !linux && !windows

package hostfs

import (
	"fmt"
	"os"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// AsUser returns OS() for the daemon's own user. On this system a thread
// cannot take another user's file system rights, so other users' paths are
// refused: their archives are streamed instead.
func AsUser(u User) (FS, error) {
	if uint32(os.Geteuid()) == u.UID && uint32(os.Getegid()) == u.GID {
		return OS(), nil
	}
	return nil, fmt.Errorf("paths on the daemon host are only opened for the daemon's own user on this system; stream the archive instead: %w", errdefs.ErrPermissionDenied)
}

// ProcessGroups is not available on this system.
func ProcessGroups(pid int32, uid uint32) ([]uint32, error) {
	return nil, fmt.Errorf("process groups: %w", errdefs.ErrNotImplemented)
}
