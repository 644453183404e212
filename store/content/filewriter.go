package content

import (
	"errors"
	"os"
	"syscall"
)

// fileWriterChunk is the size of the aligned chunks a FileWriter writes.
const fileWriterChunk = 1 << 20

// FileWriter writes a large file sequentially, from offset 0, the way the
// store writes blobs: the bytes are gathered in aligned 1 MiB chunks and
// each full chunk goes straight to disk (O_DIRECT) on a second goroutine
// while the next one fills, so that producing the bytes and writing them
// overlap and the page cache is left alone. The last, partial chunk goes
// through the page cache. Where the filesystem refuses direct I/O, every
// chunk goes through the page cache and the writer starts its writeback
// every 8 MiB, waiting for the chunk before, so that the caller's final
// fsync is short and the dirty pages stay bounded.
//
// A saved archive is written this way. Close ends the writing; the caller
// then fsyncs and closes the file. A FileWriter is not safe for concurrent
// use.
type FileWriter struct {
	f      *os.File
	direct *os.File // nil where refused

	buf, spare []byte // the chunk being filled, and the other one
	n          int    // bytes in buf
	off        int64  // file offset of buf[0]

	// The chunk in flight: done receives its write's error.
	done     chan error
	inFlight bool
	err      error // the first error; every later call returns it

	wb writeback // of the chunks that go through the page cache
}

// NewFileWriter returns a FileWriter over f, which must be empty and open
// for writing.
func NewFileWriter(f *os.File) *FileWriter {
	return &FileWriter{
		f:      f,
		direct: openDirectFile(f, os.O_WRONLY),
		buf:    AlignedBuffer(fileWriterChunk),
		spare:  AlignedBuffer(fileWriterChunk),
		done:   make(chan error, 1),
		wb:     writeback{wait: true},
	}
}

// Write gathers p; every full chunk is written.
func (w *FileWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		c := copy(w.buf[w.n:], p)
		w.n += c
		written += c
		p = p[c:]
		if w.n == len(w.buf) {
			if err := w.writeChunk(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// writeChunk hands the full chunk to a goroutine, after the chunk before
// it is written, and swaps buffers.
func (w *FileWriter) writeChunk() error {
	if err := w.wait(); err != nil {
		return err
	}
	chunk, off := w.buf, w.off
	w.inFlight = true
	go func() { w.done <- w.writeAt(chunk, off) }()
	w.buf, w.spare = w.spare, w.buf
	w.n = 0
	w.off += int64(len(chunk))
	return nil
}

// wait waits for the chunk in flight, if any.
func (w *FileWriter) wait() error {
	if w.inFlight {
		w.inFlight = false
		if err := <-w.done; err != nil && w.err == nil {
			w.err = err
		}
	}
	return w.err
}

// writeAt writes a full chunk: directly when it can, else through the page
// cache with its writeback started. It runs on one goroutine at a time.
func (w *FileWriter) writeAt(chunk []byte, off int64) error {
	if w.direct != nil {
		_, err := w.direct.WriteAt(chunk, off)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EINVAL) {
			return err // an *fs.PathError, naming the file
		}
		// Opened with O_DIRECT but refused: buffered from now on.
		w.direct.Close()
		w.direct = nil
	}
	if _, err := w.f.WriteAt(chunk, off); err != nil {
		return err
	}
	w.wb.grew(w.f, off+int64(len(chunk)))
	return nil
}

// Close waits for the chunk in flight, writes the rest through the page
// cache and releases the writer's own descriptor. The file stays open, for
// the caller's fsync. Close is the last call, and a second one does
// nothing; after an error it only releases.
func (w *FileWriter) Close() error {
	if w.err == errClosed {
		return nil
	}
	err := w.wait()
	if w.direct != nil {
		if cerr := w.direct.Close(); cerr != nil && err == nil {
			err = cerr
		}
		w.direct = nil
	}
	if err == nil && w.n > 0 {
		if _, werr := w.f.WriteAt(w.buf[:w.n], w.off); werr != nil {
			err = werr
		}
		w.off += int64(w.n)
		w.n = 0
	}
	w.err = errClosed
	return err
}

var errClosed = errors.New("content: FileWriter is closed")
