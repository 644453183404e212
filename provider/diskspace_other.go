//go:build !unix

package provider

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// freeSpace is not known on this system: installs skip the check.
func freeSpace(path string) (uint64, error) {
	return 0, fmt.Errorf("free space of %s: %w", path, errdefs.ErrNotImplemented)
}

// isNoSpace reports whether err is a write refused for want of space.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC)
}
