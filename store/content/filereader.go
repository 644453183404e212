package content

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// directReadMin is the size from which a read of a range that the page
// cache lacks goes straight to disk.
const directReadMin = 64 << 10

// directWindow is the most an unaligned read takes of the caller's bytes
// at once. Its window holds one more block, so that a read of up to 1 MiB
// at any offset is one direct read.
const directWindow = 1 << 20

var windowPool = sync.Pool{New: func() any { b := AlignedBuffer(directWindow + DirectIOAlign); return &b }}

// FileReaderAt reads a file at any offset, as *os.File does, and is safe
// for concurrent use. A committed blob is read through one, and so is an
// archive being installed.
//
// A read of 64 KiB or more of a range that the page cache does not hold
// goes straight to disk (O_DIRECT): an aligned one into the caller's
// buffer, an unaligned one through an aligned window that it copies from.
// The store's writers commit blobs without filling the page cache, a saved
// archive is written the same way, and a file copied from another host is
// seldom cached; on some machines (virtual disks) filling the page cache
// costs more than the disk itself, and a buffered read of an uncached file
// runs at a third of the disk's speed. Ranges the cache holds, small reads,
// and kernels that cannot tell what the cache holds (before cachestat(2),
// Linux 6.5) go through the page cache.
type FileReaderAt struct {
	f    *os.File
	size int64

	directOnce sync.Once
	direct     *os.File    // nil until opened, or where refused
	noDirect   atomic.Bool // a direct read failed: buffered from now on
}

// NewFileReaderAt returns a FileReaderAt over f, whose size is size. It
// takes f over: Close closes it.
func NewFileReaderAt(f *os.File, size int64) *FileReaderAt {
	return &FileReaderAt{f: f, size: size}
}

// ReadAt implements io.ReaderAt.
func (r *FileReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if len(p) < directReadMin || off < 0 || off >= r.size || r.noDirect.Load() {
		return r.f.ReadAt(p, off)
	}
	if cached, ok := pageCached(r.f, off, min(int64(len(p)), r.size-off)); !ok || cached {
		return r.f.ReadAt(p, off)
	}
	d := r.directFile()
	if d == nil {
		return r.f.ReadAt(p, off)
	}
	var n int
	var err error
	if directAligned(p, off) {
		n, err = d.ReadAt(p, off)
	} else {
		n, err = readWindows(d, p, off)
	}
	if err == nil || errors.Is(err, io.EOF) {
		return n, err
	}
	// A filesystem that opens O_DIRECT but refuses the read: read through
	// the page cache from now on.
	r.noDirect.Store(true)
	return r.f.ReadAt(p, off)
}

// readWindows reads p at off from d, opened with O_DIRECT, through aligned
// windows of a pooled buffer.
func readWindows(d *os.File, p []byte, off int64) (int, error) {
	bp := windowPool.Get().(*[]byte)
	defer windowPool.Put(bp)
	buf := *bp
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		start := pos &^ (DirectIOAlign - 1)
		skip := int(pos - start)
		want := (skip + min(len(p)-done, directWindow) + DirectIOAlign - 1) &^ (DirectIOAlign - 1)
		m, err := d.ReadAt(buf[:want], start)
		if m > skip {
			done += copy(p[done:], buf[skip:m])
		}
		if err != nil {
			if errors.Is(err, io.EOF) && done == len(p) {
				return done, nil
			}
			return done, err
		}
	}
	return done, nil
}

// directFile opens the file for direct reads once, or returns nil.
func (r *FileReaderAt) directFile() *os.File {
	r.directOnce.Do(func() { r.direct = openDirectFile(r.f, os.O_RDONLY) })
	return r.direct
}

// Size returns the size given to NewFileReaderAt.
func (r *FileReaderAt) Size() int64 { return r.size }

// File returns the file, for http.ServeContent (which uses sendfile).
func (r *FileReaderAt) File() *os.File { return r.f }

// Close closes the file.
func (r *FileReaderAt) Close() error {
	err := r.f.Close()
	r.directOnce.Do(func() {}) // no direct open after Close
	if r.direct != nil {
		err = errors.Join(err, r.direct.Close())
	}
	return err
}
