//go:build unix

package provider

import (
	"os"
	"syscall"
)

// syncDir makes a rename in dir durable; errors are ignored, since some
// file systems refuse to sync directories. dir is opened as a directory
// only, without following a symbolic link and without waiting: it may be a
// directory of a client, which may have put something else there.
func syncDir(dir string) {
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	_ = d.Sync()
	d.Close()
}
