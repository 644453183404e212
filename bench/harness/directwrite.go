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

// directChunk is the size of the writes of DirectWrite: that of the chunks
// providerd writes a download in.
const directChunk = 2 << 20

// DirectWrite writes the bytes of the files to dir the way providerd's
// content store writes a download, in aligned chunks straight to disk
// (O_DIRECT, one write at a time, the tail through the page cache), fsyncs
// each, and returns the rate in MB/s: what this disk allows an install
// that keeps it busy and does nothing else. The copies are removed. It
// starts after Settle; the sources should be in the page cache.
func DirectWrite(dir string, paths ...string) (float64, error) {
	var n int64
	buf := content.AlignedBuffer(directChunk)
	Settle()
	start := time.Now()
	for i, src := range paths {
		dst := filepath.Join(dir, fmt.Sprintf("floor-%d.direct", i))
		m, err := directCopy(src, dst, buf)
		os.Remove(dst)
		if err != nil {
			return 0, err
		}
		n += m
	}
	return MBps(n, time.Since(start)), nil
}

func directCopy(src, dst string, buf []byte) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_DIRECT, 0o644)
	if err != nil {
		return 0, fmt.Errorf("direct write: %w", err)
	}
	defer out.Close()
	var off int64
	for {
		m, rerr := io.ReadFull(in, buf)
		if m == len(buf) {
			if _, err := out.WriteAt(buf, off); err != nil {
				return off, err
			}
			off += int64(m)
		} else if m > 0 {
			// The tail, unaligned, goes through the page cache as the
			// store's does.
			tail, err := os.OpenFile(dst, os.O_WRONLY, 0)
			if err != nil {
				return off, err
			}
			_, err = tail.WriteAt(buf[:m], off)
			if err == nil {
				err = tail.Sync()
			}
			tail.Close()
			if err != nil {
				return off, err
			}
			off += int64(m)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return off, rerr
		}
	}
	return off, out.Sync()
}
