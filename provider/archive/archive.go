// Package archive is the image archive that Save writes and Install -Path
// reads. Write makes one tar that is at the same time an OCI image layout
// (oci-layout, index.json, blobs/<alg>/<hex>) and a `docker save` archive
// (manifest.json), named as docker 25 and containerd name theirs. Prepare
// reads what the field's tools write: an OCI image layout with or without
// manifest.json (skopeo oci-archive:, crane pull --format oci, oras copy
// --to-oci-layout, docker save 25 and later), and a docker archive without
// an OCI index (docker save before 25, skopeo docker-archive:, crane pull's
// tarball). WriteDir streams a layout directory as a tar that Prepare
// reads.
//
// Write streams an archive from blobs it opens one at a time, so memory
// stays flat whatever the image size. Prepare validates an archive
// completely before it changes anything: every entry is checked against
// the descriptors, every blob is verified against its digest, and every
// layer against the format its media type names, while it is ingested;
// the blobs are committed to the content store (Prepared.Commit, or Read,
// which does both) only once all of them are verified. A refused archive
// leaves the store as it was. Spool copies an archive that arrives as a
// stream (gzip-compressed or not) to a file that Prepare can read, checking
// its tar structure as the bytes go by, so that what cannot be an archive
// is refused at its first bytes rather than once it is all on disk.
//
// The package does no HTTP and keeps no records: callers turn Contents into
// image records.
package archive

import (
	"fmt"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	// sha512 digests are accepted next to sha256 ones.
	_ "crypto/sha512"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// Image is one image of an archive.
type Image struct {
	// RefName names the image: "repository:tag", e.g.
	// "nanoserver:10.0.10586.0", with the registry's host in front when it
	// is known ("127.0.0.1:5000/microsoft/iis:1.0.0.0"). Write puts the tag
	// alone in the org.opencontainers.image.ref.name of index.json and the
	// whole name in its io.containerd.image.name, as docker 25 and
	// containerd do, and the whole name in the RepoTags of manifest.json.
	// Read takes it from io.containerd.image.name, else from a ref.name
	// that is a name rather than a tag, else from RepoTags (see ParseName).
	// Empty for an image that the archive does not name.
	RefName string
	// Tag is set by Read when the archive gives the image a tag but no
	// repository (a ref.name that is a tag alone, as `skopeo copy …
	// oci:DIR:TAG` writes): RefName is then empty. Write ignores it.
	Tag string
	// Manifest is the descriptor of the image manifest: media type, digest,
	// size and annotations. In Read's result its annotations are those of
	// index.json. An image of a docker archive that has no OCI index gets a
	// manifest that Read makes (see Prepare).
	Manifest ocispec.Descriptor
	Config   ocispec.Descriptor
	Layers   []ocispec.Descriptor
	// Signatures, when set, is the image's cosign signature manifest:
	// Write lists it in index.json under the ref.name
	// "sha256-<hex>.sig" (cosign's tag, where a tool reading the layout
	// finds it), not in manifest.json; Read attaches such an entry to the
	// image it names.
	Signatures *Signatures
}

// Signatures is a signature manifest and its blobs: its config and its
// layers, the signed payloads.
type Signatures struct {
	Manifest ocispec.Descriptor
	Config   ocispec.Descriptor
	Layers   []ocispec.Descriptor
}

// MaxSignaturePayload bounds a signature layer that Read accepts.
const MaxSignaturePayload = 64 << 10

// Limits bound what Read accepts. A zero field takes its default.
type Limits struct {
	// MaxEntries is the largest number of tar entries. Default 100000.
	MaxEntries int
	// MaxJSON is the largest index.json, manifest.json, manifest or config.
	// Default 4 MiB.
	MaxJSON int64
	// MaxTotal is the largest archive, and for Spool and ReadFile the
	// largest decompressed archive. Default 1 TiB.
	MaxTotal int64
	// MaxJSONTotal bounds the manifests and configs that Read holds in
	// memory together. Default 64 MiB.
	MaxJSONTotal int64
}

// The defaults of Limits.
const (
	DefaultMaxEntries   = 100000
	DefaultMaxJSON      = 4 << 20
	DefaultMaxTotal     = 1 << 40
	DefaultMaxJSONTotal = 64 << 20
)

func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxJSON <= 0 {
		l.MaxJSON = DefaultMaxJSON
	}
	if l.MaxTotal <= 0 {
		l.MaxTotal = DefaultMaxTotal
	}
	if l.MaxJSONTotal <= 0 {
		l.MaxJSONTotal = DefaultMaxJSONTotal
	}
	return l
}

// Names of the files at the root of an archive.
const (
	ociLayoutFile  = ocispec.ImageLayoutFile // {"imageLayoutVersion":"1.0.0"}
	indexFile      = ocispec.ImageIndexFile  // the OCI index
	dockerManifest = "manifest.json"         // the docker save manifest
	dockerRepos    = "repositories"          // docker's legacy tag file, ignored when present
	blobsDir       = ocispec.ImageBlobsDir
	copyBufferSize = 1 << 20
)

// Manifest and config media types an archive may hold. image-spec does not
// define the Docker ones.
const (
	mediaTypeDockerManifest    = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerConfig      = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerForeignBlob = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// dockerManifestEntry is one image of manifest.json, as `docker save`
// writes it and `docker load` reads it.
type dockerManifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

func isManifestType(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == mediaTypeDockerManifest
}

func isConfigType(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == mediaTypeDockerConfig
}

// isNonDistributable reports whether a layer of this media type may be left
// out of an archive: its blob is fetched from the descriptor's URLs.
func isNonDistributable(mt string) bool {
	switch mt {
	case "application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
		mediaTypeDockerForeignBlob:
		return true
	}
	return false
}

// blobPath is the name of a blob in the archive: blobs/<alg>/<hex>.
func blobPath(d digest.Digest) string {
	return path.Join(blobsDir, string(d.Algorithm()), d.Encoded())
}

// parseBlobPath is the digest named by an entry under blobs/, which must be
// blobs/sha256/<64 hex> or blobs/sha512/<128 hex>.
func parseBlobPath(name string) (digest.Digest, error) {
	parts := strings.Split(name, "/")
	if len(parts) != 3 || parts[0] != blobsDir {
		return "", fmt.Errorf("archive entry %q: not blobs/<algorithm>/<hex>: %w", name, errdefs.ErrInvalidArgument)
	}
	alg := digest.Algorithm(parts[1])
	if alg != digest.SHA256 && alg != digest.SHA512 {
		return "", fmt.Errorf("archive entry %q: algorithm %q is not sha256 or sha512: %w", name, alg, errdefs.ErrInvalidArgument)
	}
	d := digest.NewDigestFromEncoded(alg, parts[2])
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("archive entry %q: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	return d, nil
}

// validateDescriptor checks the digest and size of a descriptor that what
// names (e.g. `image "x" layer 2`).
func validateDescriptor(what string, desc ocispec.Descriptor) error {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("%s: digest %q: %v: %w", what, desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if a := desc.Digest.Algorithm(); a != digest.SHA256 && a != digest.SHA512 {
		return fmt.Errorf("%s: digest %s: algorithm is not sha256 or sha512: %w", what, desc.Digest, errdefs.ErrInvalidArgument)
	}
	if desc.Size < 0 {
		return fmt.Errorf("%s: blob %s: negative size %d: %w", what, desc.Digest, desc.Size, errdefs.ErrInvalidArgument)
	}
	return nil
}
