package catalog

// CONTRACT SKELETON: the bodies are filled in by the registry implementation.
// The signatures and doc comments are the contract that server/catalog,
// catalog/find and catalog/publish build against.

import (
	"context"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/store/content"
)

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

// Registry implements the OCI Distribution rules over a content store and a
// bbolt database. It knows nothing of HTTP. All methods are safe for
// concurrent use. Errors carry an errdefs class and, where the protocol has
// one, one of the Err* values of errors.go.
type Registry struct{}

// Blobs.

// StatBlob describes a blob linked into repo.
func (r *Registry) StatBlob(ctx context.Context, repo string, dgst digest.Digest) (content.Info, error) {
	panic("unimplemented")
}

// OpenBlob opens a blob linked into repo. The caller closes the reader.
func (r *Registry) OpenBlob(ctx context.Context, repo string, dgst digest.Digest) (content.ReaderAt, error) {
	panic("unimplemented")
}

// DeleteBlob unlinks a blob from repo, and deletes its data when no
// repository links it any more.
func (r *Registry) DeleteBlob(ctx context.Context, repo string, dgst digest.Digest) error {
	panic("unimplemented")
}

// MountBlob links a blob of repository from into repo. An empty from mounts
// from any repository that has the blob (anonymous mount).
func (r *Registry) MountBlob(ctx context.Context, repo, from string, dgst digest.Digest) (content.Info, error) {
	panic("unimplemented")
}

// PutBlob writes a whole blob (monolithic upload) and links it into repo.
// size < 0 means unknown.
func (r *Registry) PutBlob(ctx context.Context, repo string, expected digest.Digest, size int64, rd io.Reader) (content.Info, error) {
	panic("unimplemented")
}

// Uploads.

// StartUpload opens an upload session in repo.
func (r *Registry) StartUpload(ctx context.Context, repo string) (UploadStatus, error) {
	panic("unimplemented")
}

// GetUpload describes an upload session.
func (r *Registry) GetUpload(ctx context.Context, repo, id string) (UploadStatus, error) {
	panic("unimplemented")
}

// WriteUpload appends rd to an upload. offset >= 0 must equal the session's
// current offset, else ErrOutOfRange; offset < 0 appends.
func (r *Registry) WriteUpload(ctx context.Context, repo, id string, offset int64, rd io.Reader) (UploadStatus, error) {
	panic("unimplemented")
}

// CommitUpload verifies the upload against dgst, commits it and links it
// into repo. A mismatch discards the upload.
func (r *Registry) CommitUpload(ctx context.Context, repo, id string, dgst digest.Digest) (content.Info, error) {
	panic("unimplemented")
}

// CancelUpload discards an upload session.
func (r *Registry) CancelUpload(ctx context.Context, repo, id string) error {
	panic("unimplemented")
}

// Manifests.

// ResolveManifest finds the manifest that reference (a tag or a digest)
// names in repo.
func (r *Registry) ResolveManifest(ctx context.Context, repo, reference string) (ManifestRecord, error) {
	panic("unimplemented")
}

// GetManifest resolves reference and opens the manifest bytes.
func (r *Registry) GetManifest(ctx context.Context, repo, reference string) (ManifestRecord, content.ReaderAt, error) {
	panic("unimplemented")
}

// PutManifest validates and stores a manifest under reference.
func (r *Registry) PutManifest(ctx context.Context, repo, reference, mediaType string, body []byte) (ManifestRecord, error) {
	panic("unimplemented")
}

// DeleteManifest deletes a tag, or a manifest by digest with every tag that
// points at it.
func (r *Registry) DeleteManifest(ctx context.Context, repo, reference string) error {
	panic("unimplemented")
}

// Tags lists repo's tags in lexical order, after last, at most n (n < 0: all).
func (r *Registry) Tags(ctx context.Context, repo string, n int, last string) ([]string, error) {
	panic("unimplemented")
}

// Repositories lists repository names in lexical order, after last, at most
// n (n < 0: all).
func (r *Registry) Repositories(ctx context.Context, n int, last string) ([]string, error) {
	panic("unimplemented")
}

// Referrers lists the manifests in repo whose subject is subject, filtered
// by artifactType when it is not empty.
func (r *Registry) Referrers(ctx context.Context, repo string, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	panic("unimplemented")
}

// TaggedManifests lists every tag of every repository with its manifest, in
// one read transaction.
func (r *Registry) TaggedManifests(ctx context.Context) ([]TaggedManifest, error) {
	panic("unimplemented")
}
