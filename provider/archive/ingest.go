package archive

import (
	"bytes"
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

// ingest streams every blob of plan that cs does not hold yet into an
// ingest of cs, verifying its digest and, for a layer, its format, and
// returns the verified ingests, closed and not committed. A layer that cs
// holds already is checked from ra. On a failure, every ingest it opened
// is aborted.
func ingest(ctx context.Context, ra io.ReaderAt, cs content.Store, plan []blobEntry) (pending []pendingBlob, err error) {
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err == nil {
			return
		}
		// Abort even when ctx is cancelled: nothing may be left behind.
		actx := context.WithoutCancel(ctx)
		for _, p := range pending {
			_ = cs.Abort(actx, p.ref) // NotFound: never created
		}
		pending = nil
	}()

	for _, e := range plan {
		if err := ctx.Err(); err != nil {
			return pending, err
		}
		if _, err := cs.Info(ctx, e.digest); err == nil {
			if err := checkHeldLayer(ctx, ra, e); err != nil {
				return pending, err
			}
			continue
		}
		ref := "archive-" + id + "-" + e.digest.String()
		w, err := cs.Writer(ctx, ref, content.WithExpected(e.digest), content.WithTotal(e.size))
		if err != nil {
			if errdefs.IsAlreadyExists(err) {
				if err := checkHeldLayer(ctx, ra, e); err != nil {
					return pending, err
				}
				continue
			}
			return pending, fmt.Errorf("blob %s: %w", e.digest, err)
		}
		pending = append(pending, pendingBlob{ref: ref, digest: e.digest, size: e.size})
		if err := copyBlob(ctx, w, ra, e); err != nil {
			w.Close()
			return pending, err
		}
		if err := w.Close(); err != nil {
			return pending, fmt.Errorf("blob %s: %w", e.digest, err)
		}
	}
	return pending, nil
}

// checkHeldLayer checks a layer that the store holds already, reading it
// from the archive: its bytes must match their digest, as those of any
// entry, and an archive must not name them a layer unless they are one.
func checkHeldLayer(ctx context.Context, ra io.ReaderAt, e blobEntry) error {
	if e.format == notLayer || e.data != nil {
		return nil
	}
	h := e.digest.Algorithm().Hash()
	r := io.TeeReader(&ctxReader{ctx: ctx, r: io.NewSectionReader(ra, e.offset, e.size)}, h)
	lerr := checkLayer(r, e.format)
	if _, err := io.Copy(io.Discard, r); err != nil {
		lerr = err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if got := digest.NewDigest(e.digest.Algorithm(), h); got != e.digest {
		return fmt.Errorf("blob %s (archive entry %q): bytes have digest %s: %w", e.digest, e.name, got, errdefs.ErrInvalidArgument)
	}
	if lerr != nil {
		return fmt.Errorf("blob %s (archive entry %q): layer: %w", e.digest, e.name, lerr)
	}
	return nil
}

// copyBlob streams the data of e (from ra, or its bytes) into w and checks its size and digest,
// and, for a layer, its format, on another goroutine as the bytes go by.
func copyBlob(ctx context.Context, w content.Writer, ra io.ReaderAt, e blobEntry) error {
	if w.Offset() > 0 {
		if err := w.Truncate(0); err != nil {
			return fmt.Errorf("blob %s: %w", e.digest, err)
		}
	}
	var check *layerCheck
	var tee io.Writer // a nil *layerCheck must not become a non-nil io.Writer
	if e.format != notLayer {
		check = startLayerCheck(e.format)
		tee = check
	}
	var from io.Reader = io.NewSectionReader(ra, e.offset, e.size)
	if e.data != nil {
		from = bytes.NewReader(e.data)
	}
	src := io.LimitReader(&ctxReader{ctx: ctx, r: from}, e.size)
	n, err := content.CopyAhead(w, src, tee, w.Offset()) // the writer hashes
	if err == nil && n != e.size {
		err = fmt.Errorf("%d of %d bytes, truncated: %w", n, e.size, errdefs.ErrInvalidArgument)
	}
	if err == nil {
		if got := w.Digest(); got != e.digest {
			err = fmt.Errorf("bytes have digest %s: %w", got, errdefs.ErrInvalidArgument)
		}
	}
	if check != nil {
		// The bytes that do not match their digest are refused as such,
		// whatever the checker thinks of them.
		if cerr := check.finish(err); err == nil && cerr != nil {
			return fmt.Errorf("blob %s (archive entry %q): layer: %w", e.digest, e.name, cerr)
		}
	}
	if err != nil {
		return fmt.Errorf("blob %s (archive entry %q): %w", e.digest, e.name, err)
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
