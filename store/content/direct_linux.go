package content

import (
	"os"

	"golang.org/x/sys/unix"
)

// openDirect opens path for writes that bypass the page cache (O_DIRECT),
// or returns nil where the filesystem refuses them (tmpfs, some FUSE and
// network filesystems): the writer then goes through the page cache only.
func openDirect(path string) *os.File {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return f
}

// startWriteback asks the kernel to start writing the given range of f to
// disk, without waiting for it. A writer calls it as its buffered data
// grows, so that the fsync of Commit finds most of the blob already on disk
// instead of starting a writeback of the whole blob only then. It is a
// hint: an error (a filesystem without support) only leaves the work to the
// fsync.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// waitWriteback starts the writeback of the given range of f and waits for
// it. Like startWriteback it is a hint: on an error, the fsync does the
// work.
func waitWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n,
		unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
}
