// Package model is what catalogd and its clients (providerd, the
// publisher) share of the catalog: the OCI Distribution grammar of
// repository names, tags and digests, the media types, and the record of
// a stored manifest. It imports no registry, so that providerd reads
// sources without importing catalogd's registry package (catalog).
package model

import (
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/catalog/find"
)

// DefaultMaxManifestSize is the largest manifest PutManifest accepts unless
// WithMaxManifestSize says otherwise.
const DefaultMaxManifestSize = 4 << 20

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

// FindManifest is what the find rules read of the record of a manifest of
// repo, with the tags that point at it.
func (m ManifestRecord) FindManifest(repo string, tags []string) find.Manifest {
	return find.Manifest{
		Repository:  repo,
		Digest:      m.Digest.String(),
		Tags:        tags,
		Annotations: m.Annotations,
		Size:        m.ContentSize,
		OSVersion:   m.OSVersion,
		Pushed:      m.Pushed,
	}
}
