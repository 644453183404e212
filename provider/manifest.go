package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider/archive"
)

// The Docker media types that registries still serve next to the OCI ones.
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// maxLayers bounds the layers of one manifest.
const maxLayers = 1024

// pendingImage is an image of a job's chain once its manifest is fetched.
type pendingImage struct {
	entry  api.FindEntry
	digest digest.Digest
	src    Source
	// index is set when the source tagged an index; manifest is then the
	// manifest chosen in it.
	index         *ocispec.Descriptor
	indexBytes    []byte
	platform      *ocispec.Platform // the chosen manifest's, under an index
	manifest      ocispec.Descriptor
	manifestBytes []byte
	config        ocispec.Descriptor
	layers        []ocispec.Descriptor
	// signed is the record's Signed, set by checkSignature, and sigs the
	// signature manifest that verified it, with its blobs' bytes.
	signed string
	sigs   *sigCopy
}

func (img *pendingImage) label() string { return img.entry.Name + " " + img.entry.Version }

// blobs are the config and the layers.
func (img *pendingImage) blobs() []ocispec.Descriptor {
	return append([]ocispec.Descriptor{img.config}, img.layers...)
}

// manifestBlobs are the manifest and, when there is one, the index.
func (img *pendingImage) manifestBlobs() []ocispec.Descriptor {
	out := []ocispec.Descriptor{img.manifest}
	if img.index != nil {
		out = append(out, *img.index)
	}
	return out
}

// record is the image record of img, installed at installed.
func (img *pendingImage) record(installed time.Time) imageRecord {
	e := img.entry
	size := img.manifest.Size + img.config.Size
	for _, l := range img.layers {
		size += l.Size
	}
	rec := imageRecord{
		Name:        e.Name,
		Repository:  e.Repository,
		Publisher:   e.Publisher,
		Version:     e.Version,
		Description: e.Description,
		IsOSImage:   e.Parent == nil,
		Size:        size,
		Created:     e.Created,
		Installed:   installed,
		Digest:      img.digest,
		Source:      e.Source,
		OSVersion:   e.OSVersion,
		Manifest:    img.manifest,
		Config:      img.config,
		Layers:      img.layers,
		Signed:      img.signed,
	}
	if c := img.sigs; c != nil {
		rec.Signatures = &archive.Signatures{Manifest: c.manifest, Config: c.config, Layers: c.layers}
	}
	if e.Parent != nil {
		pr := *e.Parent
		rec.Parent = &pr
	}
	if img.index != nil {
		idx := *img.index
		rec.Index = &idx
	}
	return rec
}

// fetchImage fetches the manifest of e from its source, verifies it against
// the digest the source listed, and reads its config and layers. Under an
// index it takes the manifest that choosePlatform picks for the host. A
// manifest that is not a container image (an artifact: its config is not
// an image config, or a layer is not an image layer) is refused.
func (p *Provider) fetchImage(ctx context.Context, e api.FindEntry) (*pendingImage, error) {
	label := e.Name + " " + e.Version
	dgst, err := digest.Parse(e.Digest)
	if err != nil {
		return nil, fmt.Errorf("image %s: digest %q: %v: %w", label, e.Digest, err, errdefs.ErrFailedPrecondition)
	}
	src, err := p.source(ctx, e.Source)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", label, err)
	}
	img := &pendingImage{entry: e, digest: dgst, src: src}
	desc, b, err := fetchManifest(ctx, src, e.Repository, e.Version, dgst, label)
	if err != nil {
		return nil, err
	}
	mt := manifestMediaType(desc.MediaType, b)
	if mt == ocispec.MediaTypeImageIndex || mt == mediaTypeDockerManifestList {
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("image %s: index %s: %v: %w", label, dgst, err, errdefs.ErrFailedPrecondition)
		}
		chosen, err := choosePlatform(idx.Manifests, p.platform)
		if err != nil {
			return nil, fmt.Errorf("image %s: index %s: %w", label, dgst, err)
		}
		img.platform = chosen.Platform
		indexDesc := desc
		indexDesc.MediaType = mt
		img.index, img.indexBytes = &indexDesc, b
		if desc, b, err = fetchManifest(ctx, src, e.Repository, "", chosen.Digest, label); err != nil {
			return nil, err
		}
		mt = manifestMediaType(desc.MediaType, b)
	}
	if mt != ocispec.MediaTypeImageManifest && mt != mediaTypeDockerManifest {
		return nil, fmt.Errorf("image %s: manifest %s has media type %q, not an image manifest: %w",
			label, desc.Digest, mt, errdefs.ErrFailedPrecondition)
	}
	desc.MediaType = mt
	img.manifest, img.manifestBytes = desc, b
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("image %s: manifest %s: %v: %w", label, desc.Digest, err, errdefs.ErrFailedPrecondition)
	}
	var layerTypes []string
	for _, l := range m.Layers {
		layerTypes = append(layerTypes, l.MediaType)
	}
	if !find.IsImage(mt, m.ArtifactType, m.Config.MediaType, layerTypes, m.Subject != nil) {
		what := fmt.Sprintf("config media type %q", m.Config.MediaType)
		if m.ArtifactType != "" {
			what = fmt.Sprintf("artifact type %q, %s", m.ArtifactType, what)
		}
		return nil, fmt.Errorf("image %s: manifest %s is an artifact (%s), not a container image: %w",
			label, desc.Digest, what, errdefs.ErrFailedPrecondition)
	}
	if err := checkDescriptor(m.Config); err != nil {
		return nil, fmt.Errorf("image %s: config: %w", label, err)
	}
	if len(m.Layers) > maxLayers {
		return nil, fmt.Errorf("image %s: %d layers, more than %d: %w", label, len(m.Layers), maxLayers, errdefs.ErrFailedPrecondition)
	}
	for i, l := range m.Layers {
		if err := checkDescriptor(l); err != nil {
			return nil, fmt.Errorf("image %s: layer %d: %w", label, i, err)
		}
	}
	img.config = trimDescriptor(m.Config)
	for _, l := range m.Layers {
		img.layers = append(img.layers, trimDescriptor(l))
	}
	return img, nil
}

// tagFetcher is a Source that fetches the manifest an index entry lists by
// the entry's tag where that is worth it (endpointSource.ManifestAtTag).
type tagFetcher interface {
	ManifestAtTag(ctx context.Context, repo, tag string, dgst digest.Digest) (ocispec.Descriptor, []byte, error)
}

// fetchManifest fetches a manifest by digest, or, from a tagFetcher, as the
// manifest of tag (which the index says is dgst; "" for none), and checks
// its bytes against dgst, whatever the source did.
func fetchManifest(ctx context.Context, src Source, repo, tag string, dgst digest.Digest, label string) (ocispec.Descriptor, []byte, error) {
	var desc ocispec.Descriptor
	var b []byte
	var err error
	if tf, ok := src.(tagFetcher); ok && tag != "" {
		desc, b, err = tf.ManifestAtTag(ctx, repo, tag, dgst)
	} else {
		desc, b, err = src.Manifest(ctx, repo, dgst.String())
	}
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("image %s: manifest %s: %w", label, dgst, err)
	}
	if got := dgst.Algorithm().FromBytes(b); got != dgst {
		return ocispec.Descriptor{}, nil, fmt.Errorf("image %s: manifest %s: the bytes have digest %s: %w",
			label, dgst, got, errdefs.ErrFailedPrecondition)
	}
	desc.Digest = dgst
	desc.Size = int64(len(b))
	return desc, b, nil
}

// manifestMediaType is the manifest's own mediaType field, else the type
// the source reported, else what its shape says.
func manifestMediaType(reported string, b []byte) string {
	var probe struct {
		MediaType string            `json:"mediaType"`
		Manifests json.RawMessage   `json:"manifests"`
		Config    json.RawMessage   `json:"config"`
		Layers    []json.RawMessage `json:"layers"`
	}
	_ = json.Unmarshal(b, &probe)
	if probe.MediaType != "" {
		return probe.MediaType
	}
	if mt, _, _ := strings.Cut(reported, ";"); strings.TrimSpace(mt) != "" && mt != "application/json" {
		return strings.TrimSpace(mt)
	}
	switch {
	case probe.Manifests != nil && probe.Config == nil:
		return ocispec.MediaTypeImageIndex
	case probe.Config != nil:
		return ocispec.MediaTypeImageManifest
	}
	return reported
}

func checkDescriptor(d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("digest %q: %v: %w", d.Digest, err, errdefs.ErrFailedPrecondition)
	}
	if d.Size < 0 {
		return fmt.Errorf("blob %s: size %d: %w", d.Digest, d.Size, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// trimDescriptor keeps what the provider needs of a descriptor.
func trimDescriptor(d ocispec.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, Annotations: d.Annotations}
}
