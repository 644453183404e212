package catalog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// DefaultMaxManifestSize is the largest manifest PutManifest accepts unless
// WithMaxManifestSize says otherwise.
const DefaultMaxManifestSize = 4 << 20

// maxConfigSize bounds how much of an image config is read to find its
// os.version.
const maxConfigSize = 1 << 20

// Manifest and layer media types that image-spec does not define, or
// defines only as deprecated.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	// MediaTypeDockerForeignLayer is Docker's non-distributable layer, used
	// by Windows base images.
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

	MediaTypeImageLayerNonDistributable     = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	MediaTypeImageLayerNonDistributableGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	MediaTypeImageLayerNonDistributableZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

	mediaTypeDockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// IsNonDistributable reports whether a layer of this media type may be
// missing from the registry: its blob is fetched from the descriptor's URLs.
func IsNonDistributable(mediaType string) bool {
	switch mediaType {
	case MediaTypeImageLayerNonDistributable,
		MediaTypeImageLayerNonDistributableGzip,
		MediaTypeImageLayerNonDistributableZstd,
		MediaTypeDockerForeignLayer:
		return true
	}
	return false
}

// ManifestRecord is what the catalog keeps about a stored manifest. The
// manifest bytes themselves are a blob in the content store.
type ManifestRecord struct {
	Digest       digest.Digest     `json:"digest"`
	MediaType    string            `json:"mediaType"`
	Size         int64             `json:"size"` // manifest bytes
	ArtifactType string            `json:"artifactType,omitempty"`
	Subject      digest.Digest     `json:"subject,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	// ContentSize is the manifest size plus the sizes of its config and
	// layers (or, for an index, of the manifests it lists).
	ContentSize int64 `json:"contentSize"`
	// OSVersion is the config's os.version, when the config is an OCI image
	// config that has one.
	OSVersion string    `json:"osVersion,omitempty"`
	Pushed    time.Time `json:"pushed"`
}

// Descriptor is the OCI descriptor of the manifest.
func (m ManifestRecord) Descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType:    m.MediaType,
		Digest:       m.Digest,
		Size:         m.Size,
		ArtifactType: m.ArtifactType,
		Annotations:  m.Annotations,
	}
}

// TaggedManifest is a tag and the manifest it points at.
type TaggedManifest struct {
	Repository string
	Tag        string
	Manifest   ManifestRecord
}

// UploadStatus describes a blob upload session.
type UploadStatus struct {
	ID         string
	Repository string
	Offset     int64
}

// uploadSession is the bbolt record of an upload. Its data lives in the
// content store's ingest ref uploadRef(id) until it is committed.
type uploadSession struct {
	Repository string    `json:"repository"`
	Started    time.Time `json:"started"`
}

// Registry implements the OCI Distribution rules over a content store and a
// bbolt database. It knows nothing of HTTP. All methods are safe for
// concurrent use. Errors carry an errdefs class and, where the protocol has
// one, one of the Err* values of errors.go.
//
// Content is shared by every repository; a link in bbolt says which
// repositories may serve a blob. Content is written and committed before
// any bbolt record points at it, and deleted only after the last record
// that points at it is gone. One Registry must own its content store and
// database: the ordering of commits against deletions is kept in memory.
type Registry struct {
	cs              content.Store
	db              *meta.DB
	maxManifestSize int64

	// gc orders the content lifecycle. Writers hold the read side from the
	// moment they commit (or find) content until their link to it is in
	// bbolt; deleters hold the write side from deciding that content is
	// unreferenced until its file is gone. So a writer never links content
	// that a deleter is about to remove.
	gc sync.RWMutex
}

// RegistryOpt sets an option of NewRegistry.
type RegistryOpt func(*Registry)

// WithMaxManifestSize sets the largest manifest body accepted, in bytes. A
// value <= 0 keeps DefaultMaxManifestSize.
func WithMaxManifestSize(n int64) RegistryOpt {
	return func(r *Registry) {
		if n > 0 {
			r.maxManifestSize = n
		}
	}
}

// NewRegistry returns a Registry over the content store cs and the metadata
// database db. The caller keeps ownership of both and closes them after the
// last call.
func NewRegistry(cs content.Store, db *meta.DB, opts ...RegistryOpt) *Registry {
	r := &Registry{cs: cs, db: db, maxManifestSize: DefaultMaxManifestSize}
	for _, opt := range opts {
		opt(r)
	}
	return r
}

// MaxManifestSize is the largest manifest body PutManifest accepts, so that
// a server can stop reading a request body early.
func (r *Registry) MaxManifestSize() int64 { return r.maxManifestSize }

// Blobs.

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

// ResolveManifest finds the manifest that reference (a tag or a digest)
// names in repo. An unknown repository gives ErrNameUnknown, an unknown tag
// or digest ErrManifestUnknown.
func (r *Registry) ResolveManifest(ctx context.Context, repo, reference string) (ManifestRecord, error) {
	if err := ValidateName(repo); err != nil {
		return ManifestRecord{}, err
	}
	tag, dgst, err := ParseReference(reference)
	if err != nil {
		return ManifestRecord{}, err
	}
	var rec ManifestRecord
	err = r.db.View(ctx, func(tx *bolt.Tx) error {
		rb := meta.GetRepositoryBucket(tx, repo)
		if rb == nil {
			return fmt.Errorf("repository %s: %w", repo, ErrNameUnknown)
		}
		if tag != "" {
			v := meta.GetTagsBucket(rb).Get([]byte(tag))
			if v == nil {
				return fmt.Errorf("manifest %s:%s: %w", repo, tag, ErrManifestUnknown)
			}
			dgst = digest.Digest(v)
		}
		var ok bool
		rec, ok, err = getRecord(rb, dgst)
		if err == nil && !ok {
			err = fmt.Errorf("manifest %s@%s: %w", repo, dgst, ErrManifestUnknown)
		}
		return err
	})
	return rec, err
}

// GetManifest resolves reference and opens the manifest bytes. The caller
// closes the reader.
func (r *Registry) GetManifest(ctx context.Context, repo, reference string) (ManifestRecord, content.ReaderAt, error) {
	rec, err := r.ResolveManifest(ctx, repo, reference)
	if err != nil {
		return ManifestRecord{}, nil, err
	}
	ra, err := r.cs.ReaderAt(ctx, rec.Digest)
	if err != nil {
		if errdefs.IsNotFound(err) {
			// Deleted since it was resolved.
			return ManifestRecord{}, nil, fmt.Errorf("manifest %s@%s: %w", repo, rec.Digest, ErrManifestUnknown)
		}
		return ManifestRecord{}, nil, fmt.Errorf("manifest %s@%s: %w", repo, rec.Digest, err)
	}
	return rec, ra, nil
}

// PutManifest validates and stores a manifest under reference.
//
// reference is a tag, stored with the sha256 digest of body, or a digest
// (sha256 or sha512) that body must match (else ErrDigestMismatch).
// mediaType is the Content-Type of the request; when body names its own
// media type the two must agree. Supported are OCI image manifests and
// indexes and Docker schema 2 manifests and manifest lists; Docker schema 1
// gives ErrUnsupported. A body over the size limit gives
// ErrManifestTooLarge; bad JSON or a broken rule ErrManifestInvalid; a
// distributable blob or listed manifest that repo lacks
// ErrManifestBlobUnknown. On error nothing changes.
//
// The returned record has Subject set when the manifest has a subject; the
// referrer entry is recorded whether or not the subject exists. Putting the
// same bytes under the same reference again changes nothing and returns
// the record of the first put.
func (r *Registry) PutManifest(ctx context.Context, repo, reference, mediaType string, body []byte) (ManifestRecord, error) {
	if err := ValidateName(repo); err != nil {
		return ManifestRecord{}, err
	}
	if int64(len(body)) > r.maxManifestSize {
		return ManifestRecord{}, fmt.Errorf("manifest of %d bytes, at most %d accepted: %w", len(body), r.maxManifestSize, ErrManifestTooLarge)
	}
	tag, dgst, err := ParseReference(reference)
	if err != nil {
		return ManifestRecord{}, err
	}
	if dgst != "" {
		if got := dgst.Algorithm().FromBytes(body); got != dgst {
			return ManifestRecord{}, fmt.Errorf("manifest %s: body has digest %s: %w", dgst, got, ErrDigestMismatch)
		}
	} else {
		dgst = digest.SHA256.FromBytes(body)
	}
	m, err := parseManifest(dgst, mediaType, body)
	if err != nil {
		return ManifestRecord{}, err
	}

	if rec, ok, err := r.storedAs(ctx, repo, tag, dgst); err != nil || ok {
		return rec, err
	}
	if err := r.checkManifestReferences(ctx, repo, m); err != nil {
		return ManifestRecord{}, err
	}
	rec := ManifestRecord{
		Digest:       dgst,
		MediaType:    m.mediaType,
		Size:         int64(len(body)),
		ArtifactType: m.artifactType,
		Annotations:  m.annotations,
		ContentSize:  m.contentSize,
		Pushed:       time.Now().UTC(),
	}
	if m.subject != nil {
		rec.Subject = m.subject.Digest
	}
	if m.config != nil && (m.config.MediaType == ocispec.MediaTypeImageConfig || m.config.MediaType == MediaTypeDockerConfig) {
		rec.OSVersion = r.readOSVersion(ctx, *m.config)
	}

	rec, err = r.storeManifest(ctx, repo, tag, rec, m, body)
	if err != nil && !errdefs.IsAlreadyExists(err) {
		// The content may be committed with nothing pointing at it.
		r.deleteUnreferenced(ctx, dgst)
	}
	return rec, err
}

// storedAs returns the record of dgst when reference already names it in
// repo, so that a repeated put changes nothing.
func (r *Registry) storedAs(ctx context.Context, repo, tag string, dgst digest.Digest) (ManifestRecord, bool, error) {
	var (
		rec ManifestRecord
		ok  bool
	)
	err := r.db.View(ctx, func(tx *bolt.Tx) error {
		rb := meta.GetRepositoryBucket(tx, repo)
		if rb == nil {
			return nil
		}
		if tag != "" && digest.Digest(meta.GetTagsBucket(rb).Get([]byte(tag))) != dgst {
			return nil
		}
		var err error
		rec, ok, err = getRecord(rb, dgst)
		return err
	})
	return rec, ok, err
}

// checkManifestReferences checks, before any content is written, that repo
// has what the manifest refers to, with the sizes the descriptors give.
// storeManifest checks the links again in its transaction.
func (r *Registry) checkManifestReferences(ctx context.Context, repo string, m *manifest) error {
	err := r.db.View(ctx, func(tx *bolt.Tx) error {
		return checkReferences(meta.GetRepositoryBucket(tx, repo), m, true)
	})
	if err != nil {
		return err
	}
	for _, d := range m.blobs {
		info, err := r.cs.Info(ctx, d.Digest)
		if errdefs.IsNotFound(err) {
			return fmt.Errorf("manifest %s: blob %s: %w", m.digest, d.Digest, ErrManifestBlobUnknown)
		}
		if err != nil {
			return fmt.Errorf("manifest %s: blob %s: %w", m.digest, d.Digest, err)
		}
		if info.Size != d.Size {
			return fmt.Errorf("manifest %s: descriptor of blob %s has size %d, the blob has %d bytes: %w",
				m.digest, d.Digest, d.Size, info.Size, ErrManifestInvalid)
		}
	}
	return nil
}

// checkReferences checks that repo links every blob of m and holds every
// manifest that m lists. With sizes, the listed manifests' sizes must match
// their descriptors too.
func checkReferences(rb *bolt.Bucket, m *manifest, sizes bool) error {
	blobs := meta.GetBlobsBucket(rb)
	for _, d := range m.blobs {
		if !hasKey(blobs, []byte(d.Digest)) {
			return fmt.Errorf("manifest %s: blob %s (%s): %w", m.digest, d.Digest, d.MediaType, ErrManifestBlobUnknown)
		}
	}
	for _, d := range m.manifests {
		child, ok, err := getRecord(rb, d.Digest)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("manifest %s: manifest %s: %w", m.digest, d.Digest, ErrManifestBlobUnknown)
		}
		if sizes && child.Size != d.Size {
			return fmt.Errorf("manifest %s: descriptor of manifest %s has size %d, the manifest has %d bytes: %w",
				m.digest, d.Digest, d.Size, child.Size, ErrManifestInvalid)
		}
	}
	return nil
}

// readOSVersion returns the os.version of an image config, or "" when the
// config cannot be read or has none.
func (r *Registry) readOSVersion(ctx context.Context, config ocispec.Descriptor) string {
	if config.Size > maxConfigSize {
		return ""
	}
	ra, err := r.cs.ReaderAt(ctx, config.Digest)
	if err != nil {
		return ""
	}
	defer ra.Close()
	b, err := io.ReadAll(io.LimitReader(content.NewSectionReader(ra), maxConfigSize))
	if err != nil {
		return ""
	}
	var cfg struct {
		OSVersion string `json:"os.version"`
	}
	if json.Unmarshal(b, &cfg) != nil {
		return ""
	}
	return cfg.OSVersion
}

// storeManifest commits body to the content store, then records the
// manifest, its tag, its referrer entry and its blob link in one
// transaction. An existing record of the same digest is kept as it is.
func (r *Registry) storeManifest(ctx context.Context, repo, tag string, rec ManifestRecord, m *manifest, body []byte) (ManifestRecord, error) {
	r.gc.RLock()
	defer r.gc.RUnlock()
	if err := r.writeContent(ctx, rec.Digest, body); err != nil {
		return ManifestRecord{}, err
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return ManifestRecord{}, err
	}
	err = r.db.Update(ctx, func(tx *bolt.Tx) error {
		rb, err := meta.CreateRepositoryBucket(tx, repo)
		if err != nil {
			return err
		}
		if err := checkReferences(rb, m, false); err != nil {
			return err
		}
		key := []byte(rec.Digest)
		if old, ok, err := getRecord(rb, rec.Digest); err != nil {
			return err
		} else if ok {
			rec = old
		} else if err := meta.GetManifestsBucket(rb).Put(key, val); err != nil {
			return err
		}
		if tag != "" {
			if err := meta.GetTagsBucket(rb).Put([]byte(tag), key); err != nil {
				return err
			}
		}
		if m.subject != nil {
			refs, err := meta.CreateReferrersBucket(rb, string(m.subject.Digest))
			if err != nil {
				return err
			}
			if err := refs.Put(key, []byte(m.referrerType)); err != nil {
				return err
			}
		}
		return linkBlob(tx, repo, rec.Digest)
	})
	if err != nil {
		return ManifestRecord{}, err
	}
	return rec, nil
}

// writeContent commits b as dgst; content already there is success. The
// caller holds r.gc.
func (r *Registry) writeContent(ctx context.Context, dgst digest.Digest, b []byte) error {
	ref := refPrefixManifest + newID()
	w, err := r.cs.Writer(ctx, ref, content.WithExpected(dgst), content.WithTotal(int64(len(b))))
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("manifest %s: %w", dgst, err)
	}
	if _, err := w.Write(b); err != nil {
		w.Close()
		r.abortIngest(ctx, ref)
		return fmt.Errorf("manifest %s: %w", dgst, err)
	}
	if err := w.Commit(ctx, int64(len(b)), dgst); err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("manifest %s: %w", dgst, err)
	}
	return nil
}

// DeleteManifest deletes a tag, or a manifest by digest with every tag that
// points at it.
//
// By digest it also removes the referrer entry the manifest created and
// its blob link, and deletes its content when no repository refers to it
// any more. An unknown tag or digest gives ErrManifestUnknown, an unknown
// repository ErrNameUnknown.
func (r *Registry) DeleteManifest(ctx context.Context, repo, reference string) error {
	if err := ValidateName(repo); err != nil {
		return err
	}
	tag, dgst, err := ParseReference(reference)
	if err != nil {
		return err
	}
	if tag != "" {
		return r.db.Update(ctx, func(tx *bolt.Tx) error {
			rb := meta.GetRepositoryBucket(tx, repo)
			if rb == nil {
				return fmt.Errorf("repository %s: %w", repo, ErrNameUnknown)
			}
			tags := meta.GetTagsBucket(rb)
			if tags.Get([]byte(tag)) == nil {
				return fmt.Errorf("manifest %s:%s: %w", repo, tag, ErrManifestUnknown)
			}
			return tags.Delete([]byte(tag))
		})
	}

	r.gc.Lock()
	defer r.gc.Unlock()
	var unreferenced bool
	err = r.db.Update(ctx, func(tx *bolt.Tx) error {
		rb := meta.GetRepositoryBucket(tx, repo)
		if rb == nil {
			return fmt.Errorf("repository %s: %w", repo, ErrNameUnknown)
		}
		rec, ok, err := getRecord(rb, dgst)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("manifest %s@%s: %w", repo, dgst, ErrManifestUnknown)
		}
		key := []byte(dgst)
		if err := meta.GetManifestsBucket(rb).Delete(key); err != nil {
			return err
		}
		if err := deleteTagsOf(meta.GetTagsBucket(rb), dgst); err != nil {
			return err
		}
		if rec.Subject != "" {
			if refs := meta.GetReferrersBucket(rb, string(rec.Subject)); refs != nil {
				if err := refs.Delete(key); err != nil {
					return err
				}
				if err := meta.DeleteReferrersBucketIfEmpty(rb, string(rec.Subject)); err != nil {
					return err
				}
			}
		}
		if err := meta.GetBlobsBucket(rb).Delete(key); err != nil {
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

func deleteTagsOf(tags *bolt.Bucket, dgst digest.Digest) error {
	var doomed [][]byte
	c := tags.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if digest.Digest(v) == dgst {
			doomed = append(doomed, bytes.Clone(k))
		}
	}
	for _, k := range doomed {
		if err := tags.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// deleteUnreferenced deletes the content dgst when nothing in the database
// refers to it.
func (r *Registry) deleteUnreferenced(ctx context.Context, dgst digest.Digest) {
	r.gc.Lock()
	defer r.gc.Unlock()
	var unreferenced bool
	err := r.db.View(context.WithoutCancel(ctx), func(tx *bolt.Tx) error {
		unreferenced = !isReferenced(tx, dgst)
		return nil
	})
	if err == nil && unreferenced {
		r.deleteContent(ctx, dgst)
	}
}

// deleteContent removes the file of dgst, whose last reference is gone from
// the database. The caller holds r.gc for writing. The metadata is already
// committed, so a failure is logged, not returned.
func (r *Registry) deleteContent(ctx context.Context, dgst digest.Digest) {
	err := r.cs.Delete(context.WithoutCancel(ctx), dgst)
	if err != nil && !errdefs.IsNotFound(err) {
		logrus.WithError(err).WithField("digest", dgst).Warn("delete unreferenced content")
	}
}

// Listings.

// Tags lists repo's tags in lexical order, after last, at most n (n < 0: all).
// An unknown repository gives ErrNameUnknown.
func (r *Registry) Tags(ctx context.Context, repo string, n int, last string) ([]string, error) {
	if err := ValidateName(repo); err != nil {
		return nil, err
	}
	tags := []string{}
	err := r.db.View(ctx, func(tx *bolt.Tx) error {
		rb := meta.GetRepositoryBucket(tx, repo)
		if rb == nil {
			return fmt.Errorf("repository %s: %w", repo, ErrNameUnknown)
		}
		page(meta.GetTagsBucket(rb), n, last, func(k []byte) { tags = append(tags, string(k)) })
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tags, nil
}

// Repositories lists repository names in lexical order, after last, at most
// n (n < 0: all). A repository is listed while it holds a manifest.
func (r *Registry) Repositories(ctx context.Context, n int, last string) ([]string, error) {
	repos := []string{}
	err := r.db.View(ctx, func(tx *bolt.Tx) error {
		all := meta.GetRepositoriesBucket(tx)
		page(all, n, last, func(k []byte) { repos = append(repos, string(k)) }, func(k []byte) bool {
			manifests := meta.GetManifestsBucket(all.Bucket(k))
			if manifests == nil {
				return false
			}
			first, _ := manifests.Cursor().First()
			return first != nil
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return repos, nil
}

// page calls add for the keys of b after last, in order, at most n of them
// (n < 0: all), skipping keys that a filter rejects.
func page(b *bolt.Bucket, n int, last string, add func(k []byte), filters ...func(k []byte) bool) {
	if b == nil || n == 0 {
		return
	}
	c := b.Cursor()
	var k []byte
	if last == "" {
		k, _ = c.First()
	} else if k, _ = c.Seek([]byte(last)); k != nil && string(k) == last {
		k, _ = c.Next()
	}
	count := 0
	for ; k != nil && (n < 0 || count < n); k, _ = c.Next() {
		if !all(filters, k) {
			continue
		}
		add(k)
		count++
	}
}

func all(filters []func([]byte) bool, k []byte) bool {
	for _, f := range filters {
		if !f(k) {
			return false
		}
	}
	return true
}

// Referrers lists the manifests in repo whose subject is subject, filtered
// by artifactType when it is not empty.
//
// Each descriptor carries the manifest's media type, digest, size and
// annotations, and as artifactType the manifest's artifactType or else its
// config's media type. An unknown subject or repository gives an empty
// list.
func (r *Registry) Referrers(ctx context.Context, repo string, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	if err := ValidateName(repo); err != nil {
		return nil, err
	}
	if err := checkDigest(subject); err != nil {
		return nil, err
	}
	descs := []ocispec.Descriptor{}
	err := r.db.View(ctx, func(tx *bolt.Tx) error {
		rb := meta.GetRepositoryBucket(tx, repo)
		refs := meta.GetReferrersBucket(rb, string(subject))
		if refs == nil {
			return nil
		}
		return refs.ForEach(func(k, v []byte) error {
			if artifactType != "" && string(v) != artifactType {
				return nil
			}
			rec, ok, err := getRecord(rb, digest.Digest(k))
			if err != nil || !ok {
				return err
			}
			descs = append(descs, ocispec.Descriptor{
				MediaType:    rec.MediaType,
				Digest:       rec.Digest,
				Size:         rec.Size,
				ArtifactType: string(v),
				Annotations:  rec.Annotations,
			})
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return descs, nil
}

// TaggedManifests lists every tag of every repository with its manifest, in
// one read transaction, ordered by repository and tag.
func (r *Registry) TaggedManifests(ctx context.Context) ([]TaggedManifest, error) {
	out := []TaggedManifest{}
	err := r.db.View(ctx, func(tx *bolt.Tx) error {
		repos := meta.GetRepositoriesBucket(tx)
		return repos.ForEachBucket(func(name []byte) error {
			rb := repos.Bucket(name)
			tags := meta.GetTagsBucket(rb)
			if tags == nil {
				return nil
			}
			return tags.ForEach(func(tag, dgst []byte) error {
				rec, ok, err := getRecord(rb, digest.Digest(dgst))
				if err != nil || !ok {
					return err
				}
				out = append(out, TaggedManifest{Repository: string(name), Tag: string(tag), Manifest: rec})
				return nil
			})
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Manifest parsing.

// manifest is what PutManifest needs to know of a manifest body.
type manifest struct {
	digest       digest.Digest
	mediaType    string
	artifactType string // the artifactType field
	referrerType string // artifactType, or else the config media type
	config       *ocispec.Descriptor
	subject      *ocispec.Descriptor
	annotations  map[string]string
	// blobs must be linked into the repository: the config and the
	// distributable layers.
	blobs []ocispec.Descriptor
	// manifests must be stored in the repository: an index's entries.
	manifests   []ocispec.Descriptor
	contentSize int64
}

// manifestFields holds the fields of every supported manifest kind, so that
// fields of the wrong kind can be refused.
type manifestFields struct {
	SchemaVersion *int                 `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Subject       *ocispec.Descriptor  `json:"subject"`
	Annotations   map[string]string    `json:"annotations"`
}

func parseManifest(dgst digest.Digest, mediaType string, body []byte) (*manifest, error) {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("manifest %s: %s: %w", dgst, fmt.Sprintf(format, args...), ErrManifestInvalid)
	}
	if mt, _, ok := strings.Cut(mediaType, ";"); ok {
		mediaType = mt
	}
	mediaType = strings.TrimSpace(mediaType)

	var f manifestFields
	if err := json.Unmarshal(body, &f); err != nil {
		return nil, invalid("%v", err)
	}
	switch {
	case f.MediaType != "" && mediaType != "" && f.MediaType != mediaType:
		return nil, invalid("media type %q in the body, %q given", f.MediaType, mediaType)
	case mediaType == "":
		mediaType = f.MediaType
	}
	if mediaType == "" {
		// Neither says: infer OCI from the fields present.
		switch {
		case f.Config != nil && f.Manifests == nil:
			mediaType = ocispec.MediaTypeImageManifest
		case f.Manifests != nil && f.Config == nil && f.Layers == nil:
			mediaType = ocispec.MediaTypeImageIndex
		default:
			return nil, invalid("no media type")
		}
	}

	m := &manifest{
		digest:       dgst,
		mediaType:    mediaType,
		artifactType: f.ArtifactType,
		referrerType: f.ArtifactType,
		subject:      f.Subject,
		annotations:  f.Annotations,
		contentSize:  int64(len(body)),
	}
	switch mediaType {
	case ocispec.MediaTypeImageManifest, MediaTypeDockerManifest:
		if f.Manifests != nil {
			return nil, invalid("an image manifest has no manifests field")
		}
		if f.Config == nil {
			return nil, invalid("no config")
		}
		if err := checkDescriptor(*f.Config); err != nil {
			return nil, invalid("config: %v", err)
		}
		m.config = f.Config
		m.blobs = append(m.blobs, *f.Config)
		m.contentSize += f.Config.Size
		if m.referrerType == "" {
			m.referrerType = f.Config.MediaType
		}
		for i, l := range f.Layers {
			if err := checkDescriptor(l); err != nil {
				return nil, invalid("layer %d: %v", i, err)
			}
			m.contentSize += l.Size
			if !IsNonDistributable(l.MediaType) {
				m.blobs = append(m.blobs, l)
			}
		}
	case ocispec.MediaTypeImageIndex, MediaTypeDockerManifestList:
		if f.Config != nil || f.Layers != nil {
			return nil, invalid("an index has no config or layers field")
		}
		for i, d := range f.Manifests {
			if err := checkDescriptor(d); err != nil {
				return nil, invalid("manifest %d: %v", i, err)
			}
			m.contentSize += d.Size
			m.manifests = append(m.manifests, d)
		}
	case mediaTypeDockerSchema1, mediaTypeDockerSchema1Signed:
		return nil, fmt.Errorf("manifest %s: Docker schema 1 manifests: %w", dgst, ErrUnsupported)
	default:
		return nil, invalid("unsupported media type %q", mediaType)
	}
	if f.SchemaVersion == nil || *f.SchemaVersion != 2 {
		return nil, invalid("schemaVersion must be 2")
	}
	if f.Subject != nil {
		if err := checkDescriptor(*f.Subject); err != nil {
			return nil, invalid("subject: %v", err)
		}
	}
	return m, nil
}

// checkDescriptor checks a descriptor's digest, size and embedded data.
func checkDescriptor(d ocispec.Descriptor) error {
	if _, err := ParseDigest(string(d.Digest)); err != nil {
		return err
	}
	if d.Size < 0 {
		return fmt.Errorf("negative size %d", d.Size)
	}
	if d.Data != nil {
		if int64(len(d.Data)) != d.Size || d.Digest.Algorithm().FromBytes(d.Data) != d.Digest {
			return fmt.Errorf("data does not match digest %s and size %d", d.Digest, d.Size)
		}
	}
	return nil
}

// bbolt helpers. Byte slices from a transaction are copied before it ends:
// json.Unmarshal and string conversions copy.

func getRecord(rb *bolt.Bucket, dgst digest.Digest) (ManifestRecord, bool, error) {
	var rec ManifestRecord
	manifests := meta.GetManifestsBucket(rb)
	if manifests == nil {
		return rec, false, nil
	}
	v := manifests.Get([]byte(dgst))
	if v == nil {
		return rec, false, nil
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, false, fmt.Errorf("manifest record %s: %w", dgst, err)
	}
	return rec, true, nil
}

func linkBlob(tx *bolt.Tx, repo string, dgst digest.Digest) error {
	rb, err := meta.CreateRepositoryBucket(tx, repo)
	if err != nil {
		return err
	}
	blobs := meta.GetBlobsBucket(rb)
	if hasKey(blobs, []byte(dgst)) {
		return nil
	}
	return blobs.Put([]byte(dgst), []byte{})
}

// hasKey reports whether b holds key; it does not rely on Get, which
// returns nil for an empty value too.
func hasKey(b *bolt.Bucket, key []byte) bool {
	if b == nil {
		return false
	}
	k, _ := b.Cursor().Seek(key)
	return bytes.Equal(k, key)
}

// isLinkedAnywhere reports whether any repository links dgst.
func isLinkedAnywhere(tx *bolt.Tx, dgst digest.Digest) bool {
	return anyRepository(tx, func(rb *bolt.Bucket) bool {
		return hasKey(meta.GetBlobsBucket(rb), []byte(dgst))
	})
}

// isReferenced reports whether any repository links dgst or has a manifest
// record of that digest: while one does, its content must stay.
func isReferenced(tx *bolt.Tx, dgst digest.Digest) bool {
	return anyRepository(tx, func(rb *bolt.Bucket) bool {
		return hasKey(meta.GetBlobsBucket(rb), []byte(dgst)) || hasKey(meta.GetManifestsBucket(rb), []byte(dgst))
	})
}

func anyRepository(tx *bolt.Tx, pred func(rb *bolt.Bucket) bool) bool {
	repos := meta.GetRepositoriesBucket(tx)
	c := repos.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if rb := repos.Bucket(k); rb != nil && pred(rb) {
			return true
		}
	}
	return false
}

// Small helpers.

func checkDigest(d digest.Digest) error {
	_, err := ParseDigest(string(d))
	return err
}

// newID returns 128 random bits in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// isID reports whether id has the form newID returns.
func isID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// copyInto streams rd into w through a pooled 1 MiB buffer.
func copyInto(w io.Writer, rd io.Reader) error {
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	// Hide any WriterTo of rd so that the copy goes through the buffer.
	_, err := io.CopyBuffer(w, struct{ io.Reader }{rd}, *buf)
	return err
}
