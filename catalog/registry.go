package catalog

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/catalog/model"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// maxConfigSize bounds how much of an image config is read to find its
// os.version.
const maxConfigSize = 1 << 20

// The model of the catalog, in catalog/model, which clients import
// without the registry.
type (
	ManifestRecord = model.ManifestRecord
	TaggedManifest = model.TaggedManifest
)

const (
	DefaultMaxManifestSize = model.DefaultMaxManifestSize

	MediaTypeDockerManifest     = model.MediaTypeDockerManifest
	MediaTypeDockerManifestList = model.MediaTypeDockerManifestList
	MediaTypeDockerConfig       = model.MediaTypeDockerConfig
	MediaTypeDockerLayer        = model.MediaTypeDockerLayer
	MediaTypeDockerForeignLayer = model.MediaTypeDockerForeignLayer

	MediaTypeImageLayerNonDistributable     = model.MediaTypeImageLayerNonDistributable
	MediaTypeImageLayerNonDistributableGzip = model.MediaTypeImageLayerNonDistributableGzip
	MediaTypeImageLayerNonDistributableZstd = model.MediaTypeImageLayerNonDistributableZstd

	mediaTypeDockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"

	KindImage    = model.KindImage
	KindArtifact = model.KindArtifact
)

// IsNonDistributable reports whether a layer of this media type may be
// missing from the registry (see model.IsNonDistributable).
func IsNonDistributable(mediaType string) bool { return model.IsNonDistributable(mediaType) }

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

// copyInto streams rd into w, reading ahead of the writes, in chunks that
// w writes straight to disk (see content.CopyAhead).
func copyInto(w content.Writer, rd io.Reader) error {
	_, err := content.CopyAhead(w, rd, nil, w.Offset())
	return err
}
