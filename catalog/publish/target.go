package publish

import (
	"context"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/catalog/model"
	"github.com/containerprovider/containerprovider/store/content"
)

// Target is the part of a registry that Publish and Seed write to.
// *catalog.Registry implements it. Errors carry errdefs classes; NotFound
// from StatBlob and ResolveManifest means the object is absent.
type Target interface {
	// StatBlob describes a blob linked into repo.
	StatBlob(ctx context.Context, repo string, dgst digest.Digest) (content.Info, error)
	// OpenBlob opens a blob linked into repo; the caller closes it.
	OpenBlob(ctx context.Context, repo string, dgst digest.Digest) (content.ReaderAt, error)
	// MountBlob links a blob of repository from into repo.
	MountBlob(ctx context.Context, repo, from string, dgst digest.Digest) (content.Info, error)
	// PutBlob writes a whole blob and links it into repo. An empty
	// expected digest makes the target compute the sha256 digest while it
	// writes, which lets Publish stream a layer it has not hashed yet.
	PutBlob(ctx context.Context, repo string, expected digest.Digest, size int64, rd io.Reader) (content.Info, error)
	// ResolveManifest finds the manifest a tag or digest names in repo.
	ResolveManifest(ctx context.Context, repo, reference string) (model.ManifestRecord, error)
	// GetManifest resolves reference and opens the manifest bytes; the
	// caller closes the reader.
	GetManifest(ctx context.Context, repo, reference string) (model.ManifestRecord, content.ReaderAt, error)
	// PutManifest stores a manifest under reference.
	PutManifest(ctx context.Context, repo, reference, mediaType string, body []byte) (model.ManifestRecord, error)
	// Find answers Find-ContainerImage over the target's images.
	Find(ctx context.Context, o find.Options) ([]api.FindEntry, error)
}

// catalog's tests check that *catalog.Registry implements Target: this
// package does not import the registry, so that providerd, which packs
// layers with it, does not either.
