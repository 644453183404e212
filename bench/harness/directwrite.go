package harness

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/containerprovider/containerprovider/store/content"
)

// DirectWrite writes the bytes of the files to dir the way providerd's
// content store writes a download, in aligned chunks straight to disk
// (O_DIRECT, one write at a time, the tail through the page cache), read
// ahead on another goroutine (content.CopyAhead), fsyncs each, and returns
// the rate in MB/s: what this disk allows an install that keeps it busy
// and does nothing else. The copies are removed. It starts after Settle;
// the sources should be in the page cache.
func DirectWrite(dir string, paths ...string) (float64, error) {
	var n int64
	Settle()
	start := time.Now()
	for i, src := range paths {
		dst := filepath.Join(dir, fmt.Sprintf("floor-%d.direct", i))
		m, err := directCopy(src, dst)
		os.Remove(dst)
		if err != nil {
			return 0, err
		}
		n += m
	}
	return MBps(n, time.Since(start)), nil
}

func directCopy(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	direct, err := os.OpenFile(dst, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return 0, fmt.Errorf("direct write: %w", err)
	}
	defer direct.Close()
	n, err := content.CopyAhead(&directWriter{direct: direct, f: out}, struct{ io.Reader }{in}, nil, 0)
	if err != nil {
		return n, err
	}
	return n, out.Sync()
}

// directWriter writes the aligned chunks of CopyAhead with O_DIRECT and
// the rest (the tail) through the page cache.
type directWriter struct {
	direct, f *os.File
	off       int64
}

func (w *directWriter) Write(p []byte) (int, error) {
	f := w.direct
	if len(p)%4096 != 0 {
		f = w.f
	}
	n, err := f.WriteAt(p, w.off)
	w.off += int64(n)
	return n, err
}
