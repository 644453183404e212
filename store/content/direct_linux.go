package content

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// openDirect opens path with flag (os.O_RDONLY or os.O_WRONLY) for I/O
// that bypasses the page cache (O_DIRECT), or returns nil where the
// filesystem refuses it (tmpfs, some FUSE and network filesystems): the
// caller then goes through the page cache only.
func openDirect(path string, flag int) *os.File {
	f, err := os.OpenFile(path, flag|unix.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return f
}

// openDirectFile opens the file that f has open again, with flag, for
// direct I/O, or returns nil as openDirect does. It goes through f's
// descriptor (/proc/self/fd), never through f's name: the name may by now
// be another file, a symbolic link or a FIFO of whoever owns its
// directory, and f may have been opened with someone else's rights.
func openDirectFile(f *os.File, flag int) *os.File {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	var d *os.File
	_ = rc.Control(func(fd uintptr) {
		d = openDirect("/proc/self/fd/"+strconv.FormatUint(uint64(fd), 10), flag|unix.O_NONBLOCK)
	})
	return d
}

// pageCached reports whether the page cache holds every page of the n
// bytes of f at off (cachestat(2)). ok is false where the kernel cannot
// tell (before Linux 6.5); the caller then reads through the page cache.
func pageCached(f *os.File, off, n int64) (cached, ok bool) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, false
	}
	var cs unix.Cachestat_t
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cerr = unix.Cachestat(uint(fd), &unix.CachestatRange{Off: uint64(off), Len: uint64(n)}, &cs, 0)
	}); err != nil || cerr != nil {
		return false, false
	}
	pages := (off+n+int64(os.Getpagesize())-1)/int64(os.Getpagesize()) - off/int64(os.Getpagesize())
	return int64(cs.Cache) >= pages, true
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
