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
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/catalog/find"
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
	MediaTypeDockerManifest     = find.MediaTypeDockerManifest
	MediaTypeDockerManifestList = find.MediaTypeDockerManifestList
	MediaTypeDockerConfig       = find.MediaTypeDockerConfig
	MediaTypeDockerLayer        = find.MediaTypeDockerLayer
	MediaTypeDockerForeignLayer = find.MediaTypeDockerForeignLayer

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
	// Kind is KindImage for an image that Find lists (see find.IsImage),
	// KindArtifact for anything else; empty in records written before the
	// find index, which BuildIndex fills in.
	Kind string `json:"kind,omitempty"`
}

// The kinds of ManifestRecord.Kind.
const (
	KindImage    = "image"
	KindArtifact = "artifact"
)

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
