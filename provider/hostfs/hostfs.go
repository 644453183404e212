// Package hostfs is the host's file system as one caller of providerd sees
// it.
//
// providerd runs as root, but a path that a client names (Save-ContainerImage
// -Path, Install-ContainerImage -Path on the daemon host) must be opened with
// the client's rights, never the daemon's: dockerd never opens a path its
// client names, and neither does providerd, except through an FS of the
// caller. On Linux, AsUser runs each operation on an OS thread of its own
// whose filesystem uid and gid (setfsuid(2), setfsgid(2)) and supplementary
// groups are the caller's, so the kernel makes every check — each directory
// searched, the file opened, the sticky bit of a rename — as it would for
// the caller's own process. There is no access(2) on a name and no
// check-then-open race: what the kernel lets the caller open is what is
// opened.
//
// Open refuses anything that is not a regular file (a FIFO, a device, a
// directory) before a byte is read: it opens with O_NONBLOCK, so a FIFO
// without a writer cannot block it, and with O_NOFOLLOW. A file that does
// not exist and one the caller may not read give the same error, so that the
// answer tells the caller nothing it could not learn itself.
package hostfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// FS is the host file system as one caller sees it. Every method acts with
// the caller's rights. Paths should be absolute: a relative path is relative
// to the daemon's working directory, which a client cannot know.
type FS interface {
	// Open opens path read-only. It does not follow a symbolic link in the
	// last element, does not block on a FIFO, and refuses anything but a
	// regular file with InvalidArgument. A missing file and one the caller
	// may not read are both NotFound, with the same message.
	Open(path string) (*os.File, error)
	// Stat and Lstat are os.Stat and os.Lstat.
	Stat(path string) (fs.FileInfo, error)
	Lstat(path string) (fs.FileInfo, error)
	// MkdirAll is os.MkdirAll; the directories it makes belong to the caller.
	MkdirAll(path string, perm fs.FileMode) error
	// CreateTemp is os.CreateTemp: a new file of mode 0600 that belongs to
	// the caller, open for writing.
	CreateTemp(dir, pattern string) (*os.File, error)
	// Rename is os.Rename.
	Rename(oldpath, newpath string) error
	// Remove is os.Remove.
	Remove(path string) error
}

// User is the identity an FS acts as.
type User struct {
	UID, GID uint32
	// Groups are the supplementary groups.
	Groups []uint32
}

// OS returns the FS of the daemon's own user.
func OS() FS { return fsys{run: func(fn func() error) error { return fn() }} }

// fsys runs the operations of an FS through run, which gives them the
// caller's rights.
type fsys struct {
	run func(func() error) error
}

func (f fsys) Open(path string) (*os.File, error) {
	var file *os.File
	err := f.run(func() error {
		var err error
		file, err = os.OpenFile(path, openFlags, 0)
		return err
	})
	if err != nil {
		return nil, openError(path, err)
	}
	fi, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		file.Close()
		return nil, fmt.Errorf("%s is not a regular file (%s): %w", path, fileType(fi.Mode()), errdefs.ErrInvalidArgument)
	}
	return file, nil
}

// openError classes an error of Open. A missing file and an unreadable one
// read alike.
func openError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("cannot read %s: no such file, or not readable by you: %w", path, errdefs.ErrNotFound)
	case isSymlinkError(err):
		return fmt.Errorf("%s is a symbolic link; give the path of the file itself: %w", path, errdefs.ErrInvalidArgument)
	}
	return fmt.Errorf("cannot read %s: %w", path, err)
}

// fileType names the type of a file that is not regular.
func fileType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file"
}

func (f fsys) Stat(path string) (fi fs.FileInfo, err error) {
	err = f.run(func() error { fi, err = os.Stat(path); return err })
	return fi, err
}

func (f fsys) Lstat(path string) (fi fs.FileInfo, err error) {
	err = f.run(func() error { fi, err = os.Lstat(path); return err })
	return fi, err
}

func (f fsys) MkdirAll(path string, perm fs.FileMode) error {
	return f.run(func() error { return os.MkdirAll(path, perm) })
}

func (f fsys) CreateTemp(dir, pattern string) (file *os.File, err error) {
	err = f.run(func() error { file, err = os.CreateTemp(dir, pattern); return err })
	return file, err
}

func (f fsys) Rename(oldpath, newpath string) error {
	return f.run(func() error { return os.Rename(oldpath, newpath) })
}

func (f fsys) Remove(path string) error {
	return f.run(func() error { return os.Remove(path) })
}
