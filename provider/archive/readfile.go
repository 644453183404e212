package archive

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/store/content"
)

// ReadFile is Read on the archive file f, read from its start, which the
// caller opened and closes; f's name labels the errors. A gzip-compressed archive (magic
// 1f 8b) is first decompressed with Spool into a spool file in spoolDir,
// removed before ReadFile returns; the decompressed bytes are bounded by
// limits.MaxTotal (TooLarge beyond), so a gzip bomb stops there, and a
// stream that is not a tar stops at its first bytes. f must be a regular
// file (else InvalidArgument).
func ReadFile(ctx context.Context, f *os.File, spoolDir string, cs content.Store, limits Limits) (Contents, error) {
	fi, err := f.Stat()
	if err != nil {
		return Contents{}, fmt.Errorf("archive %s: %w", f.Name(), err)
	}
	if !fi.Mode().IsRegular() {
		return Contents{}, fmt.Errorf("archive %s: not a regular file: %w", f.Name(), errdefs.ErrInvalidArgument)
	}
	if !IsGzip(f) {
		// A file copied from another host is seldom in the page cache:
		// the FileReaderAt reads what the cache lacks straight from disk.
		ra := content.NewFileReaderAt(f, fi.Size())
		defer ra.Close()
		return Read(ctx, ra, fi.Size(), cs, limits)
	}
	spool, err := os.CreateTemp(spoolDir, "archive-*.tar")
	if err != nil {
		return Contents{}, fmt.Errorf("archive %s: spool: %w", f.Name(), err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	n, err := Spool(ctx, spool, io.NewSectionReader(f, 0, fi.Size()), limits)
	if err != nil {
		return Contents{}, fmt.Errorf("archive %s: %w", f.Name(), err)
	}
	return Read(ctx, spool, n, cs, limits)
}
