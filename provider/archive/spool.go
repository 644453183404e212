package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// maxTrailer bounds the bytes a streamed archive may have after its
// end-of-archive marker; they must be zeros. Tar writers pad to a record
// (10 KiB for GNU tar, none for Go's); a stream that goes on is refused
// there rather than spooled.
const maxTrailer = 1 << 20

// IsGzip reports whether the archive at the start of f is compressed with
// gzip (magic 1f 8b).
func IsGzip(f io.ReaderAt) bool {
	var magic [2]byte
	n, _ := f.ReadAt(magic[:], 0)
	return n == 2 && magic == [2]byte{0x1f, 0x8b}
}

// Spool copies the archive read from r to w, which is typically a file
// that Prepare reads next, decompressing it first when it is gzip. It
// checks the tar as the bytes go by, so that a stream that cannot be an
// archive is refused after the bytes that show it, not once it is all on
// disk: the first header must be a valid tar header (a stream of zeros, an
// end-of-archive marker with no entry before it, is refused at once), and
// so must each one after it; every entry name and type must be one that
// Prepare accepts (regular files and directories of an OCI layout or a
// docker archive, the layer links of a docker archive, no sparse file, no
// duplicate); the layout's JSON files
// are at most Limits.MaxJSON bytes; there are at most Limits.MaxEntries
// entries, at most Limits.MaxTotal bytes in all (TooLarge beyond), and
// after the end-of-archive marker at most 1 MiB of zeros. These faults are
// InvalidArgument. Spool does not verify digests or descriptors: Prepare
// does.
//
// It returns the bytes written to w. An error of w (a full disk, or a
// limit of the caller's) is returned as it is; the caller removes what was
// written.
func Spool(ctx context.Context, w io.Writer, r io.Reader, limits Limits) (int64, error) {
	limits = limits.withDefaults()
	raw := &sourceReader{r: r}
	br := bufio.NewReaderSize(raw, copyBufferSize)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return 0, fmt.Errorf("archive: gzip: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		defer zr.Close()
		src = zr
	}
	bw := bufio.NewWriterSize(w, copyBufferSize)
	cw := &spoolWriter{w: bw, max: limits.MaxTotal}
	in := &spoolReader{ctx: ctx, r: src, w: cw, src: raw}
	if err := checkStream(in, limits); err != nil {
		return cw.n, in.cause(err)
	}
	if err := bw.Flush(); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

// spoolReader reads the archive and writes every byte it reads to w, so
// that what the checks read is what is spooled. It keeps the errors of w
// and of ctx apart from those of the archive.
type spoolReader struct {
	ctx  context.Context
	r    io.Reader
	w    io.Writer
	src  *sourceReader
	werr error
}

func (s *spoolReader) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := s.r.Read(p)
	if n > 0 {
		if _, werr := s.w.Write(p[:n]); werr != nil {
			s.werr = werr
			return 0, werr
		}
	}
	return n, err
}

// cause prefers the error of the spool, of the source or of ctx to err,
// which may be the tar reader's account of it.
func (s *spoolReader) cause(err error) error {
	if s.werr != nil {
		return s.werr
	}
	if s.src.err != nil {
		return fmt.Errorf("archive: read: %w", s.src.err)
	}
	if cerr := s.ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// sourceReader keeps the first error, io.EOF excepted, of the reader
// that the archive comes from: a connection that drops is not a bad
// archive.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && s.err == nil {
		s.err = err
	}
	return n, err
}

// spoolWriter counts the bytes written and refuses more than max.
type spoolWriter struct {
	w   io.Writer
	n   int64
	max int64
}

func (s *spoolWriter) Write(p []byte) (int, error) {
	if s.n+int64(len(p)) > s.max {
		return 0, fmt.Errorf("archive: more than %d bytes: %w", s.max, errdefs.ErrTooLarge)
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}

// checkStream reads the tar r to its end, checking each header as Spool
// says, and then the bytes after it.
func checkStream(r io.Reader, limits Limits) error {
	tr := tar.NewReader(r)
	seen := map[string]bool{}
	buf := make([]byte, copyBufferSize)
	discard := struct{ io.Writer }{io.Discard} // no ReaderFrom: copy through buf
	count := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("archive: truncated after %d entries: %w", count, errdefs.ErrInvalidArgument)
			}
			return fmt.Errorf("archive: not a tar archive, or a damaged one, at entry %d: %v: %w", count+1, err, errdefs.ErrInvalidArgument)
		}
		if count++; count > limits.MaxEntries {
			return fmt.Errorf("archive: more than %d entries: %w", limits.MaxEntries, errdefs.ErrInvalidArgument)
		}
		if _, _, err := checkMember(hdr, seen, limits); err != nil {
			return err
		}
		if _, err := io.CopyBuffer(discard, tr, buf); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return invalidEntry(hdr.Name, "truncated")
			}
			// A gzip stream that is corrupt half way; Spool's caller
			// gets the error of the spool or the source instead when
			// there is one.
			return invalidEntry(hdr.Name, "%v", err)
		}
	}
	if count == 0 {
		return fmt.Errorf("archive: empty, or not a tar archive (it begins with an end-of-archive marker): %w", errdefs.ErrInvalidArgument)
	}
	return checkTrailer(r, buf)
}

// checkTrailer reads what follows the end-of-archive marker: at most
// maxTrailer bytes, all zeros.
func checkTrailer(r io.Reader, buf []byte) error {
	var total int64
	for {
		n, err := r.Read(buf)
		for _, b := range buf[:n] {
			if b != 0 {
				return fmt.Errorf("archive: data after the end of the tar: %w", errdefs.ErrInvalidArgument)
			}
		}
		if total += int64(n); total > maxTrailer {
			return fmt.Errorf("archive: more than %d bytes after the end of the tar: %w", maxTrailer, errdefs.ErrInvalidArgument)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("archive: after the end of the tar: %v: %w", err, errdefs.ErrInvalidArgument)
		}
	}
}
