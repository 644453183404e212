//go:build unix

package provider

import (
	"errors"
	"syscall"
)

// freeSpace reports the bytes that an unprivileged writer may still use on
// the filesystem of path.
func freeSpace(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// isNoSpace reports whether err is a write refused for want of space
// (ENOSPC) or of quota (EDQUOT).
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
