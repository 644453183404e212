package archive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/store/content"
)

// pendingBlob is a blob written to an ingest, verified, and not committed.
type pendingBlob struct {
	ref    string
	digest digest.Digest
	size   int64
}

// ingest streams every blob of plan into cs, verifying its digest, and
// commits them only once all are verified. Blobs cs already holds are
// skipped. On a failure before the commits, every ingest it opened is
// aborted.
func ingest(ctx context.Context, ra io.ReaderAt, cs content.Store, plan []blobEntry) (err error) {
	id, err := randomID()
	if err != nil {
		return err
	}
	var pending []pendingBlob
	committed := 0
	defer func() {
		if err == nil {
			return
		}
		// Abort even when ctx is cancelled: nothing may be left behind.
		actx := context.WithoutCancel(ctx)
		for _, p := range pending[committed:] {
			_ = cs.Abort(actx, p.ref) // NotFound: committed or never created
		}
	}()

	for _, e := range plan {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := cs.Info(ctx, e.digest); err == nil {
			continue
		}
		ref := "archive-" + id + "-" + e.digest.String()
		w, err := cs.Writer(ctx, ref, content.WithExpected(e.digest), content.WithTotal(e.size))
		if err != nil {
			if errdefs.IsAlreadyExists(err) {
				continue
			}
			return fmt.Errorf("blob %s: %w", e.digest, err)
		}
		pending = append(pending, pendingBlob{ref: ref, digest: e.digest, size: e.size})
		if err := copyBlob(ctx, w, ra, e); err != nil {
			w.Close()
			return err
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("blob %s: %w", e.digest, err)
		}
	}

	for _, p := range pending {
		if err := commitBlob(ctx, cs, p); err != nil {
			return err
		}
		committed++
	}
	return nil
}

// copyBlob streams the data of e into w and checks its size and digest.
func copyBlob(ctx context.Context, w content.Writer, ra io.ReaderAt, e blobEntry) error {
	if w.Offset() > 0 {
		if err := w.Truncate(0); err != nil {
			return fmt.Errorf("blob %s: %w", e.digest, err)
		}
	}
	src := io.LimitReader(&ctxReader{ctx: ctx, r: io.NewSectionReader(ra, e.offset, e.size)}, e.size)
	n, err := content.CopyAhead(w, src, nil, w.Offset()) // the writer hashes
	if err != nil {
		return fmt.Errorf("blob %s (archive entry %q): %w", e.digest, e.name, err)
	}
	if n != e.size {
		return fmt.Errorf("blob %s (archive entry %q): %d of %d bytes, truncated: %w", e.digest, e.name, n, e.size, errdefs.ErrInvalidArgument)
	}
	if got := w.Digest(); got != e.digest {
		return fmt.Errorf("blob %s (archive entry %q): bytes have digest %s: %w", e.digest, e.name, got, errdefs.ErrInvalidArgument)
	}
	return nil
}

// commitBlob reopens a verified ingest, which resumes from its saved hash
// state, and commits it. A blob committed meanwhile by someone else is
// success.
func commitBlob(ctx context.Context, cs content.Store, p pendingBlob) error {
	w, err := cs.Writer(ctx, p.ref, content.WithExpected(p.digest), content.WithTotal(p.size))
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			_ = cs.Abort(context.WithoutCancel(ctx), p.ref)
			return nil
		}
		return fmt.Errorf("blob %s: %w", p.digest, err)
	}
	if w.Offset() != p.size || w.Digest() != p.digest {
		w.Close()
		return fmt.Errorf("blob %s: ingest changed after verification: %w", p.digest, errdefs.ErrFailedPrecondition)
	}
	if err := w.Commit(ctx, p.size, p.digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("blob %s: %w", p.digest, err)
	}
	return nil
}

func randomID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("archive: random id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
