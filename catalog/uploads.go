package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// uploadRef is the content store ingest ref of upload id.
func uploadRef(id string) string { return refPrefixUpload + id }

// StartUpload opens an upload session in repo. The session and its data
// survive a restart until CommitUpload or CancelUpload.
func (r *Registry) StartUpload(ctx context.Context, repo string) (UploadStatus, error) {
	if err := ValidateName(repo); err != nil {
		return UploadStatus{}, err
	}
	id := newID()
	w, err := r.cs.Writer(ctx, uploadRef(id))
	if err != nil {
		return UploadStatus{}, fmt.Errorf("upload in %s: %w", repo, err)
	}
	if err := w.Close(); err != nil {
		return UploadStatus{}, fmt.Errorf("upload in %s: %w", repo, err)
	}
	val, err := json.Marshal(uploadSession{Repository: repo, Started: time.Now().UTC()})
	if err != nil {
		return UploadStatus{}, err
	}
	err = r.db.Update(ctx, func(tx *bolt.Tx) error {
		return meta.GetUploadsBucket(tx).Put([]byte(id), val)
	})
	if err != nil {
		r.abortIngest(ctx, uploadRef(id))
		return UploadStatus{}, err
	}
	return UploadStatus{ID: id, Repository: repo}, nil
}

// GetUpload describes an upload session. An unknown session, or one of
// another repository, gives ErrBlobUploadUnknown.
func (r *Registry) GetUpload(ctx context.Context, repo, id string) (UploadStatus, error) {
	if err := r.checkSession(ctx, repo, id); err != nil {
		return UploadStatus{}, err
	}
	st := UploadStatus{ID: id, Repository: repo}
	s, err := r.cs.Status(ctx, uploadRef(id))
	switch {
	case err == nil:
		st.Offset = s.Offset
	case !errdefs.IsNotFound(err):
		return UploadStatus{}, fmt.Errorf("upload %s: %w", id, err)
	}
	return st, nil
}

// WriteUpload appends rd to an upload. offset >= 0 must equal the session's
// current offset, else ErrOutOfRange; offset < 0 appends.
//
// The returned status carries the offset after the call, also on error
// (for an out-of-range chunk, the unchanged offset). Bytes read before a
// failure of rd stay in the upload. A second call on the same upload while
// one runs gives ErrUnavailable.
func (r *Registry) WriteUpload(ctx context.Context, repo, id string, offset int64, rd io.Reader) (UploadStatus, error) {
	if err := r.checkSession(ctx, repo, id); err != nil {
		return UploadStatus{}, err
	}
	ref := uploadRef(id)
	w, err := r.cs.Writer(ctx, ref)
	if err != nil {
		return UploadStatus{}, fmt.Errorf("upload %s: %w", id, err)
	}
	// A commit or cancel may have ended the session since the check; the
	// writer then holds a fresh ingest that nothing owns.
	if err := r.sessionGone(ctx, repo, id); err != nil {
		w.Close()
		r.abortIngest(ctx, ref)
		return UploadStatus{}, err
	}
	st := UploadStatus{ID: id, Repository: repo, Offset: w.Offset()}
	if offset >= 0 && offset != st.Offset {
		w.Close()
		return st, fmt.Errorf("upload %s: chunk starts at %d, upload has %d bytes: %w", id, offset, st.Offset, ErrRangeInvalid)
	}
	copyErr := copyInto(w, rd)
	st.Offset = w.Offset()
	if err := w.Close(); err != nil && copyErr == nil {
		copyErr = err
	}
	// A cancel that ran while the writer held the ref could not discard
	// the data: do it now.
	if err := r.sessionGone(ctx, repo, id); err != nil {
		r.abortIngest(ctx, ref)
		return UploadStatus{}, err
	}
	if copyErr != nil {
		return st, fmt.Errorf("upload %s: %w", id, copyErr)
	}
	return st, nil
}

// CommitUpload verifies the upload against dgst, commits it and links it
// into repo. A mismatch discards the upload.
//
// dgst may be sha256 or sha512. The session ends in every case but a busy
// upload (ErrUnavailable) or an invalid digest: a mismatch gives
// ErrDigestMismatch and leaves neither content nor session behind.
func (r *Registry) CommitUpload(ctx context.Context, repo, id string, dgst digest.Digest) (content.Info, error) {
	if err := checkDigest(dgst); err != nil {
		return content.Info{}, err
	}
	if err := r.checkSession(ctx, repo, id); err != nil {
		return content.Info{}, err
	}
	ref := uploadRef(id)
	w, err := r.cs.Writer(ctx, ref)
	if err != nil {
		return content.Info{}, fmt.Errorf("upload %s: %w", id, err)
	}
	// The session goes first, while this writer holds the ref: a write
	// that starts after then finds no session.
	if err := r.deleteSession(ctx, repo, id); err != nil {
		w.Close()
		if errors.Is(err, ErrBlobUploadUnknown) {
			r.abortIngest(ctx, ref)
		}
		return content.Info{}, err
	}
	info, err := r.commitAndLink(ctx, repo, w, 0, dgst)
	if err != nil {
		return content.Info{}, fmt.Errorf("upload %s: %w", id, err)
	}
	return info, nil
}

// CancelUpload discards an upload session. An unknown session gives
// ErrBlobUploadUnknown.
func (r *Registry) CancelUpload(ctx context.Context, repo, id string) error {
	if err := r.deleteSession(ctx, repo, id); err != nil {
		return err
	}
	// A write in progress holds the ref and discards the data itself when
	// it finds the session gone.
	r.abortIngest(ctx, uploadRef(id))
	return nil
}

// PurgeUploads discards the upload sessions whose data was last written
// more than olderThan ago, and the ingests of this Registry that no session
// owns and that nothing wrote to for as long (left behind by a crash). A
// server calls it at start-up and then now and then. It returns how many
// sessions and ingests it discarded.
func (r *Registry) PurgeUploads(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := time.Now().Add(-olderThan)
	statuses, err := r.cs.ListStatuses(ctx)
	if err != nil {
		return 0, err
	}
	updated := map[string]time.Time{}
	for _, st := range statuses {
		updated[st.Ref] = st.UpdatedAt
	}
	owned := map[string]bool{}
	var stale []string
	err = r.db.View(ctx, func(tx *bolt.Tx) error {
		return meta.GetUploadsBucket(tx).ForEach(func(k, v []byte) error {
			id := string(k)
			var s uploadSession
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("upload %s: decode session: %w", id, err)
			}
			last, ok := updated[uploadRef(id)]
			if !ok {
				last = s.Started
			}
			if last.Before(cutoff) {
				stale = append(stale, id)
			} else {
				owned[uploadRef(id)] = true
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	purged := 0
	for _, id := range stale {
		err := r.db.Update(ctx, func(tx *bolt.Tx) error { return meta.GetUploadsBucket(tx).Delete([]byte(id)) })
		if err != nil {
			return purged, err
		}
		r.abortIngest(ctx, uploadRef(id))
		owned[uploadRef(id)] = true // handled
		purged++
	}
	for _, st := range statuses {
		if owned[st.Ref] || st.UpdatedAt.After(cutoff) || !isRegistryRef(st.Ref) {
			continue
		}
		if err := r.cs.Abort(ctx, st.Ref); err == nil {
			purged++
		} else if !errdefs.IsNotFound(err) && !errdefs.IsUnavailable(err) {
			return purged, fmt.Errorf("ingest %q: %w", st.Ref, err)
		}
	}
	return purged, nil
}

func isRegistryRef(ref string) bool {
	for _, p := range []string{refPrefixUpload, refPrefixPut, refPrefixManifest} {
		if strings.HasPrefix(ref, p) {
			return true
		}
	}
	return false
}

func (r *Registry) checkSession(ctx context.Context, repo, id string) error {
	if err := ValidateName(repo); err != nil {
		return err
	}
	return r.db.View(ctx, func(tx *bolt.Tx) error {
		_, err := getSession(tx, repo, id)
		return err
	})
}

// sessionGone returns the ErrBlobUploadUnknown error when the session has
// ended, and nil otherwise. It checks even when ctx is done: a client that
// leaves must not make the registry discard a live upload.
func (r *Registry) sessionGone(ctx context.Context, repo, id string) error {
	err := r.checkSession(context.WithoutCancel(ctx), repo, id)
	if errors.Is(err, ErrBlobUploadUnknown) {
		return err
	}
	if err != nil {
		logrus.WithError(err).WithField("upload", id).Warn("check upload session")
	}
	return nil
}

func (r *Registry) deleteSession(ctx context.Context, repo, id string) error {
	if err := ValidateName(repo); err != nil {
		return err
	}
	return r.db.Update(ctx, func(tx *bolt.Tx) error {
		if _, err := getSession(tx, repo, id); err != nil {
			return err
		}
		return meta.GetUploadsBucket(tx).Delete([]byte(id))
	})
}

func getSession(tx *bolt.Tx, repo, id string) (uploadSession, error) {
	var s uploadSession
	if !isID(id) {
		return s, fmt.Errorf("upload %q: %w", id, ErrBlobUploadUnknown)
	}
	v := meta.GetUploadsBucket(tx).Get([]byte(id))
	if v == nil {
		return s, fmt.Errorf("upload %s in %s: %w", id, repo, ErrBlobUploadUnknown)
	}
	if err := json.Unmarshal(v, &s); err != nil {
		return s, fmt.Errorf("upload %s: decode session: %w", id, err)
	}
	if s.Repository != repo {
		return s, fmt.Errorf("upload %s in %s: %w", id, repo, ErrBlobUploadUnknown)
	}
	return s, nil
}

// abortIngest discards an ingest; one that is gone already is fine, and one
// held by a writer is left to that writer.
func (r *Registry) abortIngest(ctx context.Context, ref string) {
	err := r.cs.Abort(context.WithoutCancel(ctx), ref)
	if err != nil && !errdefs.IsNotFound(err) && !errdefs.IsUnavailable(err) {
		logrus.WithError(err).WithField("ref", ref).Warn("discard upload data")
	}
}

// Manifests.
