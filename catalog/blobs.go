package catalog

import (
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// StatBlob describes a blob linked into repo. A blob that is not linked
// gives ErrBlobUnknown.
func (r *Registry) StatBlob(ctx context.Context, repo string, dgst digest.Digest) (content.Info, error) {
	if err := r.checkLinked(ctx, repo, dgst); err != nil {
		return content.Info{}, err
	}
	info, err := r.cs.Info(ctx, dgst)
	if err != nil {
		return content.Info{}, blobError(repo, dgst, err)
	}
	return info, nil
}

// OpenBlob opens a blob linked into repo. The caller closes the reader. A
// blob that is not linked gives ErrBlobUnknown.
func (r *Registry) OpenBlob(ctx context.Context, repo string, dgst digest.Digest) (content.ReaderAt, error) {
	if err := r.checkLinked(ctx, repo, dgst); err != nil {
		return nil, err
	}
	ra, err := r.cs.ReaderAt(ctx, dgst)
	if err != nil {
		return nil, blobError(repo, dgst, err)
	}
	return ra, nil
}

func (r *Registry) checkLinked(ctx context.Context, repo string, dgst digest.Digest) error {
	if err := ValidateName(repo); err != nil {
		return err
	}
	if err := checkDigest(dgst); err != nil {
		return err
	}
	return r.db.View(ctx, func(tx *bolt.Tx) error {
		if !hasKey(meta.GetBlobsBucket(meta.GetRepositoryBucket(tx, repo)), []byte(dgst)) {
			return fmt.Errorf("blob %s in %s: %w", dgst, repo, ErrBlobUnknown)
		}
		return nil
	})
}

// blobError turns a content store error about a linked blob into the
// protocol's error: content that vanished under a concurrent delete is an
// unknown blob.
func blobError(repo string, dgst digest.Digest, err error) error {
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("blob %s in %s: %w", dgst, repo, ErrBlobUnknown)
	}
	return fmt.Errorf("blob %s in %s: %w", dgst, repo, err)
}

// DeleteBlob unlinks a blob from repo, and deletes its data when no
// repository links it any more and no manifest record has its digest. A
// blob that is not linked gives ErrBlobUnknown.
func (r *Registry) DeleteBlob(ctx context.Context, repo string, dgst digest.Digest) error {
	if err := ValidateName(repo); err != nil {
		return err
	}
	if err := checkDigest(dgst); err != nil {
		return err
	}
	r.gc.Lock()
	defer r.gc.Unlock()
	var unreferenced bool
	err := r.db.Update(ctx, func(tx *bolt.Tx) error {
		blobs := meta.GetBlobsBucket(meta.GetRepositoryBucket(tx, repo))
		if !hasKey(blobs, []byte(dgst)) {
			return fmt.Errorf("blob %s in %s: %w", dgst, repo, ErrBlobUnknown)
		}
		if err := blobs.Delete([]byte(dgst)); err != nil {
			return err
		}
		if _, err := meta.DeleteRepositoryBucketIfEmpty(tx, repo); err != nil {
			return err
		}
		unreferenced = !isReferenced(tx, dgst)
		return nil
	})
	if err != nil {
		return err
	}
	if unreferenced {
		r.deleteContent(ctx, dgst)
	}
	return nil
}

// MountBlob links a blob of repository from into repo. An empty from mounts
// from any repository that has the blob (anonymous mount). A blob that from
// (or, for an anonymous mount, every repository) lacks gives
// ErrBlobUnknown: the caller then falls back to an upload.
func (r *Registry) MountBlob(ctx context.Context, repo, from string, dgst digest.Digest) (content.Info, error) {
	if err := ValidateName(repo); err != nil {
		return content.Info{}, err
	}
	if from != "" {
		if err := ValidateName(from); err != nil {
			return content.Info{}, err
		}
	}
	if err := checkDigest(dgst); err != nil {
		return content.Info{}, err
	}
	// The source link and the new link are in one transaction, and deleters
	// decide in their own transaction, so no lock is needed: content linked
	// anywhere is committed.
	err := r.db.Update(ctx, func(tx *bolt.Tx) error {
		var found bool
		if from != "" {
			found = hasKey(meta.GetBlobsBucket(meta.GetRepositoryBucket(tx, from)), []byte(dgst))
		} else {
			found = isLinkedAnywhere(tx, dgst)
		}
		if !found {
			if from == "" {
				return fmt.Errorf("blob %s in any repository: %w", dgst, ErrBlobUnknown)
			}
			return fmt.Errorf("blob %s in %s: %w", dgst, from, ErrBlobUnknown)
		}
		return linkBlob(tx, repo, dgst)
	})
	if err != nil {
		return content.Info{}, err
	}
	info, err := r.cs.Info(ctx, dgst)
	if err != nil {
		return content.Info{}, blobError(repo, dgst, err)
	}
	return info, nil
}

// PutBlob writes a whole blob (monolithic upload) and links it into repo.
// size < 0 means unknown. An empty expected digest means the caller does not
// know it: the sha256 digest is computed while writing and returned in Info.
//
// The data streams into an ingest; it is never held in memory. When
// expected names a blob that is already committed, rd is not read. A size
// that differs from the data gives ErrSizeInvalid, a digest that differs
// ErrDigestMismatch; in both cases nothing is committed or linked.
func (r *Registry) PutBlob(ctx context.Context, repo string, expected digest.Digest, size int64, rd io.Reader) (content.Info, error) {
	if err := ValidateName(repo); err != nil {
		return content.Info{}, err
	}
	if expected != "" {
		if err := checkDigest(expected); err != nil {
			return content.Info{}, err
		}
	}
	opts := []content.WriterOpt{content.WithExpected(expected)}
	if size > 0 {
		opts = append(opts, content.WithTotal(size))
	}
	// A blob found committed may be deleted before it is linked; then the
	// data is written after all. Losing that race twice in a row gives
	// ErrUnavailable.
	for range 2 {
		ref := refPrefixPut + newID()
		w, err := r.cs.Writer(ctx, ref, opts...)
		if errdefs.IsAlreadyExists(err) {
			info, linked, err := r.linkCommitted(ctx, repo, expected, size)
			if err != nil || linked {
				return info, err
			}
			continue
		}
		if err != nil {
			return content.Info{}, fmt.Errorf("blob upload to %s: %w", repo, err)
		}
		return r.writeAndLink(ctx, repo, w, ref, expected, size, rd)
	}
	return content.Info{}, fmt.Errorf("blob %s: deleted while being pushed: %w", expected, errdefs.ErrUnavailable)
}

// writeAndLink streams rd into w, commits it and links the blob into repo.
// It releases w in every case, and discards the ingest on failure.
func (r *Registry) writeAndLink(ctx context.Context, repo string, w content.Writer, ref string, expected digest.Digest, size int64, rd io.Reader) (content.Info, error) {
	discard := func() {
		w.Close()
		if err := r.cs.Abort(context.WithoutCancel(ctx), ref); err != nil && !errdefs.IsNotFound(err) {
			logrus.WithError(err).WithField("ref", ref).Warn("discard blob ingest")
		}
	}
	if err := copyInto(w, rd); err != nil {
		discard()
		return content.Info{}, fmt.Errorf("blob upload to %s: %w", repo, err)
	}
	n, dgst := w.Offset(), w.Digest()
	if size >= 0 && n != size {
		discard()
		return content.Info{}, fmt.Errorf("blob upload to %s: %d bytes announced, %d received: %w", repo, size, n, ErrSizeInvalid)
	}
	if expected != "" {
		dgst = expected
	}
	return r.commitAndLink(ctx, repo, w, n, dgst)
}

// commitAndLink commits w as dgst and links it into repo, as one step with
// respect to deletions. A digest mismatch gives ErrDigestMismatch.
func (r *Registry) commitAndLink(ctx context.Context, repo string, w content.Writer, size int64, dgst digest.Digest) (content.Info, error) {
	r.gc.RLock()
	defer r.gc.RUnlock()
	if err := w.Commit(ctx, size, dgst); err != nil && !errdefs.IsAlreadyExists(err) {
		if errdefs.IsFailedPrecondition(err) {
			return content.Info{}, fmt.Errorf("blob %s: %v: %w", dgst, err, ErrDigestMismatch)
		}
		return content.Info{}, fmt.Errorf("blob %s: %w", dgst, err)
	}
	// Committed: finish the job even if the caller has gone, so that the
	// content does not stay without a link.
	ctx = context.WithoutCancel(ctx)
	info, err := r.cs.Info(ctx, dgst)
	if err != nil {
		return content.Info{}, fmt.Errorf("blob %s: %w", dgst, err)
	}
	if err := r.db.Update(ctx, func(tx *bolt.Tx) error { return linkBlob(tx, repo, dgst) }); err != nil {
		return content.Info{}, err
	}
	return info, nil
}

// linkCommitted links the committed blob dgst into repo, when its size is
// size (size < 0: any). It reports false, and links nothing, when the blob
// is no longer committed.
func (r *Registry) linkCommitted(ctx context.Context, repo string, dgst digest.Digest, size int64) (content.Info, bool, error) {
	r.gc.RLock()
	defer r.gc.RUnlock()
	info, err := r.cs.Info(ctx, dgst)
	if errdefs.IsNotFound(err) {
		return content.Info{}, false, nil
	}
	if err != nil {
		return content.Info{}, false, fmt.Errorf("blob %s: %w", dgst, err)
	}
	if size >= 0 && info.Size != size {
		return content.Info{}, false, fmt.Errorf("blob %s: %d bytes announced, %d stored: %w", dgst, size, info.Size, ErrSizeInvalid)
	}
	if err := r.db.Update(ctx, func(tx *bolt.Tx) error { return linkBlob(tx, repo, dgst) }); err != nil {
		return content.Info{}, false, err
	}
	return info, true, nil
}

// Uploads.

// The prefixes of the content store ingest refs the Registry writes.
const (
	refPrefixUpload   = "upload-"
	refPrefixPut      = "put-"
	refPrefixManifest = "manifest-"
)
