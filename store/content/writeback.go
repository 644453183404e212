package content

import (
	"fmt"
	"os"
)

// WritebackFile is a sequential writer over a file that starts the
// writeback of its bytes as they accumulate (every 8 MiB), the way the
// store's own writers do, and waits for each chunk before the last one.
// A caller that writes a large file and fsyncs it at the end (a saved
// archive) then finds the fsync short, and the disk busy while the data is
// produced instead of after; the dirty pages it leaves stay bounded too.
//
// Where sync_file_range(2) does not exist it is a plain writer, and the
// final fsync does all the work.
type WritebackFile struct {
	f       *os.File
	off     int64 // bytes written
	started int64 // writeback started up to here
	waited  int64 // writeback waited for up to here
}

// NewWritebackFile returns a WritebackFile writing to f from its current
// offset, which it takes to be 0.
func NewWritebackFile(f *os.File) *WritebackFile { return &WritebackFile{f: f} }

// Write writes p to the file.
func (w *WritebackFile) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.started >= writebackChunk {
		startWriteback(w.f, w.started, w.off-w.started)
		if w.started > w.waited {
			waitWriteback(w.f, w.waited, w.started-w.waited)
			w.waited = w.started
		}
		w.started = w.off
	}
	if err != nil {
		return n, fmt.Errorf("write %s: %w", w.f.Name(), err)
	}
	return n, nil
}
