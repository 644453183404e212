package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/klauspost/compress/gzip"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/store/content"
)

// ReadFile is Read on the archive at path. A gzip-compressed archive (magic
// 1f 8b) is first decompressed into a spool file in spoolDir, removed before
// ReadFile returns; the decompressed bytes are bounded by limits.MaxTotal, so
// a gzip bomb stops there with an ErrInvalidArgument-class error. A missing
// file gives ErrNotFound, and a path that is not a regular file
// ErrInvalidArgument.
func ReadFile(ctx context.Context, path, spoolDir string, cs content.Store, limits Limits) (Contents, error) {
	limits = limits.withDefaults()
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Contents{}, fmt.Errorf("archive %s: %w", path, errdefs.ErrNotFound)
		}
		return Contents{}, fmt.Errorf("archive %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return Contents{}, fmt.Errorf("archive %s: %w", path, err)
	}
	// A file copied from another host is seldom in the page cache: the
	// FileReaderAt reads what the cache lacks straight from disk.
	ra := content.NewFileReaderAt(f, fi.Size())
	defer ra.Close()
	if !fi.Mode().IsRegular() {
		return Contents{}, fmt.Errorf("archive %s: not a regular file: %w", path, errdefs.ErrInvalidArgument)
	}
	var magic [2]byte
	if n, _ := f.ReadAt(magic[:], 0); n < 2 || magic != [2]byte{0x1f, 0x8b} {
		return Read(ctx, ra, fi.Size(), cs, limits)
	}

	spool, err := os.CreateTemp(spoolDir, "archive-*.tar")
	if err != nil {
		return Contents{}, fmt.Errorf("archive %s: spool: %w", path, err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	n, err := decompress(ctx, spool, f, limits.MaxTotal)
	if err != nil {
		return Contents{}, fmt.Errorf("archive %s: %w", path, err)
	}
	return Read(ctx, spool, n, cs, limits)
}

// decompress writes the gzip stream r to w, refusing more than max bytes of
// output. It returns the number of bytes written.
func decompress(ctx context.Context, w io.Writer, r io.Reader, max int64) (int64, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return 0, fmt.Errorf("gzip: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	defer zr.Close()
	n, err := io.CopyBuffer(w, io.LimitReader(&ctxReader{ctx: ctx, r: zr}, max+1), make([]byte, copyBufferSize))
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return 0, fmt.Errorf("decompress: %w", err) // file I/O, not bad data
		}
		return 0, fmt.Errorf("gzip: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if n > max {
		return 0, fmt.Errorf("gzip: decompresses to more than %d bytes: %w", max, errdefs.ErrInvalidArgument)
	}
	return n, nil
}
