package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/store/content"
)

// BlobOpener opens a blob for writing into the archive. The archive closes
// the returned reader. The archive checks the bytes against the descriptor
// (size, and digest as it streams) and fails the write on a mismatch.
//
// A layer with a non-distributable media type for which the opener returns
// an ErrNotFound-class error is left out of the archive, as registries do.
type BlobOpener func(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)

// entryTime is the modification time of every entry, so that the same
// images give the same archive bytes.
var entryTime = time.Unix(0, 0).UTC()

// Write streams one tar to w that is both an OCI image layout (oci-layout,
// index.json with one manifest entry per image, blobs/<alg>/<hex>, each
// blob once even when images share it) and a `docker save` archive
// (manifest.json with Config, RepoTags and Layers for each image that is no
// other image's base). In index.json, org.opencontainers.image.ref.name
// carries an image's tag and io.containerd.image.name its whole RefName, as
// docker 25 and containerd write them. images are given parents first; the
// caller includes the parents. The order of index.json and manifest.json is
// the order of images.
//
// Memory stays flat: blobs are streamed one at a time through a fixed
// buffer. Entries are deterministic (sorted by name, fixed mtime, uid/gid 0),
// so the same images give the same bytes. The manifest and config blobs are
// written too, and each manifest is checked to list the image's config and
// layers. manifest.json comes after the blobs, whose manifests and configs
// tell which images are bases (see baseImages).
//
// Descriptors that do not validate, the same digest with two sizes, a
// RefName that is not an image name, and two images with the same RefName
// give ErrInvalidArgument before anything is written. A blob whose bytes do
// not match its descriptor gives ErrFailedPrecondition naming the blob.
// After an error, what was written to w is not a valid archive and the
// caller discards it.
func Write(ctx context.Context, w io.Writer, images []Image, open BlobOpener) error {
	if len(images) == 0 {
		return fmt.Errorf("archive: no image: %w", errdefs.ErrInvalidArgument)
	}
	blobs, err := collectBlobs(images)
	if err != nil {
		return err
	}
	index, err := indexJSON(images)
	if err != nil {
		return err
	}
	layoutJSON, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})

	// Every entry, sorted by name. Directories carry no data; manifest.json
	// is made when its turn comes, after every blob.
	type entry struct {
		name string
		dir  bool
		blob *writeBlob
		data []byte
	}
	entries := []entry{
		{name: blobsDir + "/", dir: true},
		{name: indexFile, data: index},
		{name: dockerManifest},
		{name: ociLayoutFile, data: layoutJSON},
	}
	algs := map[digest.Algorithm]bool{}
	for _, b := range blobs {
		if !algs[b.desc.Digest.Algorithm()] {
			algs[b.desc.Digest.Algorithm()] = true
			entries = append(entries, entry{name: path.Join(blobsDir, string(b.desc.Digest.Algorithm())) + "/", dir: true})
		}
		entries = append(entries, entry{name: blobPath(b.desc.Digest), blob: b})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })

	kept := keptJSON{bases: map[digest.Digest]digest.Digest{}, diffIDs: map[digest.Digest][]digest.Digest{}}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.name == dockerManifest {
			if e.data, err = manifestJSON(images, kept); err != nil {
				return err
			}
		}
		switch {
		case e.dir:
			err = tw.WriteHeader(header(e.name, tar.TypeDir, 0o755, 0))
		case e.blob != nil:
			err = writeBlobEntry(ctx, tw, e.name, e.blob, open, kept)
		default:
			if err = tw.WriteHeader(header(e.name, tar.TypeReg, 0o644, int64(len(e.data)))); err == nil {
				_, err = tw.Write(e.data)
			}
		}
		if err != nil {
			return fmt.Errorf("archive entry %q: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	return nil
}

// keptJSON holds what Write learns from the manifests and configs it
// streams: the base.digest of each manifest and the diff_ids of each
// config, by digest.
type keptJSON struct {
	bases   map[digest.Digest]digest.Digest
	diffIDs map[digest.Digest][]digest.Digest
}

func header(name string, typ byte, mode, size int64) *tar.Header {
	return &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     mode,
		Size:     size,
		ModTime:  entryTime,
	}
}

// writeBlob is one distinct blob of the archive.
type writeBlob struct {
	desc ocispec.Descriptor
	// images whose manifest this blob is: the streamed bytes are checked
	// against their config and layers.
	manifestOf []*Image
	// config: the blob is an image's config, whose diff_ids Write keeps.
	config bool
	// optional: a non-distributable layer that may be left out.
	optional bool
}

// collectBlobs lists every distinct blob of images, sorted by digest, after
// validating the descriptors.
func collectBlobs(images []Image) ([]*writeBlob, error) {
	byDigest := map[digest.Digest]*writeBlob{}
	refNames := map[string]bool{}
	add := func(what string, desc ocispec.Descriptor, optional bool) (*writeBlob, error) {
		if err := validateDescriptor(what, desc); err != nil {
			return nil, err
		}
		b, ok := byDigest[desc.Digest]
		if !ok {
			b = &writeBlob{desc: desc, optional: optional}
			byDigest[desc.Digest] = b
			return b, nil
		}
		if b.desc.Size != desc.Size {
			return nil, fmt.Errorf("%s: blob %s has size %d and %d: %w", what, desc.Digest, b.desc.Size, desc.Size, errdefs.ErrInvalidArgument)
		}
		b.optional = b.optional && optional
		return b, nil
	}
	for i := range images {
		img := &images[i]
		name := fmt.Sprintf("image %q", img.RefName)
		if img.RefName != "" {
			if _, ok := ParseName(img.RefName); !ok {
				return nil, fmt.Errorf("%s: not an image name: %w", name, errdefs.ErrInvalidArgument)
			}
			if refNames[img.RefName] {
				return nil, fmt.Errorf("%s: listed twice: %w", name, errdefs.ErrInvalidArgument)
			}
			refNames[img.RefName] = true
		}
		if !isManifestType(img.Manifest.MediaType) {
			return nil, fmt.Errorf("%s: manifest media type %q is not an image manifest: %w", name, img.Manifest.MediaType, errdefs.ErrInvalidArgument)
		}
		if img.Manifest.Size > DefaultMaxJSON || img.Config.Size > DefaultMaxJSON {
			return nil, fmt.Errorf("%s: manifest or config over %d bytes: %w", name, DefaultMaxJSON, errdefs.ErrInvalidArgument)
		}
		m, err := add(name+" manifest", img.Manifest, false)
		if err != nil {
			return nil, err
		}
		m.manifestOf = append(m.manifestOf, img)
		c, err := add(name+" config", img.Config, false)
		if err != nil {
			return nil, err
		}
		c.config = true
		for j, l := range img.Layers {
			if _, err := add(fmt.Sprintf("%s layer %d", name, j), l, isNonDistributable(l.MediaType)); err != nil {
				return nil, err
			}
		}
		if sig := img.Signatures; sig != nil {
			for j, d := range append([]ocispec.Descriptor{sig.Manifest, sig.Config}, sig.Layers...) {
				if _, err := add(fmt.Sprintf("%s signature blob %d", name, j), d, false); err != nil {
					return nil, err
				}
			}
		}
	}
	out := slices.Collect(maps.Values(byDigest))
	slices.SortFunc(out, func(a, b *writeBlob) int { return strings.Compare(blobPath(a.desc.Digest), blobPath(b.desc.Digest)) })
	return out, nil
}

func indexJSON(images []Image) ([]byte, error) {
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: make([]ocispec.Descriptor, 0, len(images))}
	idx.SchemaVersion = 2
	for _, img := range images {
		d := img.Manifest
		d.Annotations = maps.Clone(d.Annotations)
		if img.RefName != "" {
			if d.Annotations == nil {
				d.Annotations = map[string]string{}
			}
			d.Annotations[ocispec.AnnotationRefName] = refTag(img.RefName)
			d.Annotations[AnnotationContainerdName] = img.RefName
		}
		idx.Manifests = append(idx.Manifests, d)
	}
	for _, img := range images {
		if sig := img.Signatures; sig != nil {
			d := ocispec.Descriptor{MediaType: sig.Manifest.MediaType, Digest: sig.Manifest.Digest, Size: sig.Manifest.Size,
				Annotations: map[string]string{ocispec.AnnotationRefName: find.SignatureTag(img.Manifest.Digest.String())}}
			idx.Manifests = append(idx.Manifests, d)
		}
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return nil, fmt.Errorf("archive index.json: %w", err)
	}
	return b, nil
}

// manifestJSON is the `docker save` view of the archive. It lists only the
// images that are no other image's base (see baseImages): a child's layers
// already include its parents', so each listed image is complete on its
// own, and docker load, crane push or skopeo docker-archive: of a saved
// child read one image, as they expect. The parents stay in index.json, for
// Install -Path.
func manifestJSON(images []Image, kept keptJSON) ([]byte, error) {
	out := make([]dockerManifestEntry, 0, len(images))
	facts := make([]imageFacts, len(images))
	for i, img := range images {
		ids, known := kept.diffIDs[img.Config.Digest]
		facts[i] = imageFacts{digest: img.Manifest.Digest, base: kept.bases[img.Manifest.Digest], diffIDs: ids, known: known}
	}
	base := baseImages(facts)
	for i, img := range images {
		if base[i] {
			continue
		}
		e := dockerManifestEntry{Config: blobPath(img.Config.Digest), Layers: make([]string, 0, len(img.Layers))}
		if img.RefName != "" {
			e.RepoTags = []string{img.RefName}
		}
		for _, l := range img.Layers {
			e.Layers = append(e.Layers, blobPath(l.Digest))
		}
		out = append(out, e)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("archive manifest.json: %w", err)
	}
	return b, nil
}

// writeBlobEntry streams one blob into tw, verifying its size and digest. A
// manifest or config blob is also kept (it is at most DefaultMaxJSON bytes):
// a manifest is checked against the images it describes, and kj learns its
// base.digest, or the config's diff_ids.
func writeBlobEntry(ctx context.Context, tw *tar.Writer, name string, b *writeBlob, open BlobOpener, kj keptJSON) error {
	d := b.desc.Digest
	rc, err := open(ctx, b.desc)
	if err != nil {
		if b.optional && errdefs.IsNotFound(err) {
			return nil // a non-distributable layer the source does not hold
		}
		return fmt.Errorf("blob %s: open: %w", d, err)
	}
	defer rc.Close()
	if err := tw.WriteHeader(header(name, tar.TypeReg, 0o644, b.desc.Size)); err != nil {
		return err
	}
	h := d.Algorithm().Hash()
	var kept *bytes.Buffer
	var dst io.Writer = tw
	if len(b.manifestOf) > 0 || b.config {
		kept = bytes.NewBuffer(make([]byte, 0, b.desc.Size))
		dst = io.MultiWriter(tw, kept)
	}
	n, err := content.CopyAhead(dst, io.LimitReader(&ctxReader{ctx: ctx, r: rc}, b.desc.Size), h, 0)
	if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	if n < b.desc.Size {
		return fmt.Errorf("blob %s: %d bytes, descriptor says %d: %w", d, n, b.desc.Size, errdefs.ErrFailedPrecondition)
	}
	var one [1]byte
	if _, err := io.ReadFull(rc, one[:]); err == nil {
		return fmt.Errorf("blob %s: more than the %d bytes of its descriptor: %w", d, b.desc.Size, errdefs.ErrFailedPrecondition)
	} else if !errors.Is(err, io.EOF) {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	if got := digest.NewDigest(d.Algorithm(), h); got != d {
		return fmt.Errorf("blob %s: bytes have digest %s: %w", d, got, errdefs.ErrFailedPrecondition)
	}
	if kept == nil {
		return nil
	}
	if b.config {
		if ids, ok := configDiffIDs(kept.Bytes()); ok {
			kj.diffIDs[d] = ids
		}
	}
	if len(b.manifestOf) > 0 {
		kj.bases[d] = manifestBase(kept.Bytes())
	}
	for _, img := range b.manifestOf {
		if err := checkManifest(kept.Bytes(), img); err != nil {
			return err
		}
	}
	return nil
}

// checkManifest verifies that the manifest bytes list img's config and
// layers, so that Write never produces an archive that Read refuses.
func checkManifest(b []byte, img *Image) error {
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("image %q manifest %s: %v: %w", img.RefName, img.Manifest.Digest, err, errdefs.ErrInvalidArgument)
	}
	if !sameDescriptor(m.Config, img.Config) || len(m.Layers) != len(img.Layers) {
		return fmt.Errorf("image %q manifest %s: lists another config or layer count than the image: %w", img.RefName, img.Manifest.Digest, errdefs.ErrInvalidArgument)
	}
	for i := range m.Layers {
		if !sameDescriptor(m.Layers[i], img.Layers[i]) {
			return fmt.Errorf("image %q manifest %s: layer %d is %s, image says %s: %w", img.RefName, img.Manifest.Digest, i, m.Layers[i].Digest, img.Layers[i].Digest, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func sameDescriptor(a, b ocispec.Descriptor) bool {
	return a.Digest == b.Digest && a.Size == b.Size && a.MediaType == b.MediaType
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
