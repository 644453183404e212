package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// dockerImage is an image of manifest.json in a docker archive without an
// OCI index, before its manifest is made.
type dockerImage struct {
	refName string
	config  ocispec.Descriptor
	layers  []ocispec.Descriptor
	diffIDs []digest.Digest
}

// dockerImages reads the images of a docker archive that has no OCI index
// and makes their manifests (see Prepare). It returns them in the order of
// manifest.json, with the base digest each made manifest names.
func (k *checker) dockerImages(ctx context.Context) ([]Image, []digest.Digest, error) {
	entries, err := k.dockerManifest()
	if err != nil {
		return nil, nil, err
	}
	imgs := make([]dockerImage, 0, len(entries))
	for i, e := range entries {
		img, err := k.dockerImage(ctx, fmt.Sprintf("manifest.json image %d", i), e)
		if err != nil {
			return nil, nil, err
		}
		imgs = append(imgs, img)
	}
	base := dockerBases(imgs)
	// Bases have fewer layers than their children: make their manifests
	// first, so that a child's can name its base's digest.
	order := make([]int, len(imgs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return len(imgs[a].layers) - len(imgs[b].layers) })
	images := make([]Image, len(imgs))
	bases := make([]digest.Digest, len(imgs))
	for _, i := range order {
		img := imgs[i]
		m := ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: ocispec.MediaTypeImageManifest,
			Config:    img.config,
			Layers:    img.layers,
		}
		if b := base[i]; b >= 0 {
			bases[i] = images[b].Manifest.Digest
			m.Annotations = map[string]string{ocispec.AnnotationBaseImageDigest: bases[i].String()}
			if n := imgs[b].refName; n != "" {
				m.Annotations[ocispec.AnnotationBaseImageName] = n
			}
		}
		mb, err := json.Marshal(m)
		if err != nil {
			return nil, nil, fmt.Errorf("manifest.json image %d: manifest: %w", i, err)
		}
		if int64(len(mb)) > k.limits.MaxJSON {
			return nil, nil, fmt.Errorf("manifest.json image %d: its manifest would be %d bytes, over the JSON limit of %d: %w", i, len(mb), k.limits.MaxJSON, errdefs.ErrInvalidArgument)
		}
		d := digest.FromBytes(mb)
		k.c.Manifests[d] = mb
		k.plan[d] = blobEntry{digest: d, size: int64(len(mb)), data: mb}
		images[i] = Image{
			RefName:  img.refName,
			Manifest: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(len(mb))},
			Config:   img.config,
			Layers:   img.layers,
		}
	}
	return images, bases, nil
}

// dockerImage reads image e of manifest.json: its config, whose digest is
// that of its bytes, and its layers.
func (k *checker) dockerImage(ctx context.Context, what string, e dockerManifestEntry) (dockerImage, error) {
	cm, err := k.member(what+" config", e.Config)
	if err != nil {
		return dockerImage{}, err
	}
	cb, err := k.readMember(what+" config", cm)
	if err != nil {
		return dockerImage{}, err
	}
	cd := digest.FromBytes(cb)
	if hint, ok := nameDigest(cm.name); ok && hint != cd {
		return dockerImage{}, invalidEntry(cm.raw, "%s config: its name says %s, its bytes have digest %s", what, hint, cd)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return dockerImage{}, invalidEntry(cm.raw, "%s config: %v", what, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
		return dockerImage{}, fmt.Errorf("%s: its config lists %d diff_ids and manifest.json %d layers: %w", what, len(cfg.RootFS.DiffIDs), len(e.Layers), errdefs.ErrInvalidArgument)
	}
	img := dockerImage{
		config:  ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: cm.size},
		diffIDs: cfg.RootFS.DiffIDs,
	}
	if len(e.RepoTags) > 0 {
		img.refName = e.RepoTags[0]
	}
	if err := k.dockerBlob(what+" config", cm, cd, notLayer); err != nil {
		return dockerImage{}, err
	}
	k.c.Configs[cd] = cb
	k.diffIDs[cd] = cfg.RootFS.DiffIDs
	for j, p := range e.Layers {
		lwhat := fmt.Sprintf("%s layer %d", what, j)
		lm, err := k.member(lwhat, p)
		if err != nil {
			return dockerImage{}, err
		}
		f, err := sniffLayer(k.ra, lm)
		if err != nil {
			return dockerImage{}, err
		}
		ld, err := k.layerDigest(ctx, lm, f, cfg.RootFS.DiffIDs[j])
		if err != nil {
			return dockerImage{}, err
		}
		if err := k.dockerBlob(lwhat, lm, ld, f); err != nil {
			return dockerImage{}, err
		}
		img.layers = append(img.layers, ocispec.Descriptor{MediaType: layerMediaType(f), Digest: ld, Size: lm.size})
	}
	return img, nil
}

// member is the file of the archive that a path of manifest.json names,
// through a symbolic link of a legacy layer directory if it is one. It
// records that the path and the file are used.
func (k *checker) member(what, p string) (*member, error) {
	name := path.Clean(strings.TrimPrefix(p, "./"))
	if p == "" || path.IsAbs(p) || name == ".." || strings.HasPrefix(name, "../") {
		return nil, fmt.Errorf("%s: path %q is not a name inside the archive: %w", what, p, errdefs.ErrInvalidArgument)
	}
	m, ok := k.s.members[name]
	if !ok {
		return nil, fmt.Errorf("%s: %s is missing: %w", what, p, errdefs.ErrInvalidArgument)
	}
	k.used[name] = true
	if m.link != "" {
		t, ok := k.s.members[m.link]
		if !ok || t.link != "" {
			return nil, invalidEntry(m.raw, "%s: symlink to %s, which is not a file of the archive", what, m.link)
		}
		k.used[t.name] = true
		m = t
	}
	return m, nil
}

// dockerBlob records that file m is the blob d, a layer of format f or a
// config (notLayer).
func (k *checker) dockerBlob(what string, m *member, d digest.Digest, f layerFormat) error {
	if prev, ok := k.sizes[d]; ok && prev != m.size {
		return fmt.Errorf("%s: blob %s has sizes %d and %d: %w", what, d, prev, m.size, errdefs.ErrInvalidArgument)
	}
	k.sizes[d] = m.size
	if f != notLayer {
		if err := k.layerFormat(what, d, f); err != nil {
			return err
		}
	}
	if _, ok := k.plan[d]; !ok {
		k.plan[d] = blobEntry{name: m.raw, digest: d, offset: m.offset, size: m.size}
	}
	return nil
}

// layerDigest is the digest that layer m must have: the one its name says,
// else for an uncompressed layer its diff_id, else that of its bytes, read
// once more for it. The ingest verifies the bytes against it.
func (k *checker) layerDigest(ctx context.Context, m *member, f layerFormat, diffID digest.Digest) (digest.Digest, error) {
	if d, ok := nameDigest(m.name); ok {
		return d, nil
	}
	if f == formatTar && diffID.Validate() == nil {
		return diffID, nil
	}
	h := digest.Canonical.Hash()
	if _, err := io.Copy(h, &ctxReader{ctx: ctx, r: io.NewSectionReader(k.ra, m.offset, m.size)}); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return "", cerr
		}
		return "", invalidEntry(m.raw, "%v", err)
	}
	return digest.NewDigest(digest.Canonical, h), nil
}

// nameDigest is the sha256 digest that the name of a docker archive's file
// gives: blobs/sha256/<hex>, <hex>.tar, <hex>.tar.gz, <hex>.tar.zst,
// <hex>.json, sha256:<hex>.
func nameDigest(name string) (digest.Digest, bool) {
	if strings.HasPrefix(name, blobsDir+"/") {
		d, err := parseBlobPath(name)
		return d, err == nil
	}
	if strings.Contains(name, "/") {
		return "", false
	}
	base := strings.TrimPrefix(name, string(digest.SHA256)+":")
	for _, ext := range []string{".tar.gz", ".tar.zst", ".tgz", ".tar", ".json"} {
		if b, ok := strings.CutSuffix(base, ext); ok {
			base = b
			break
		}
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, base)
	return d, d.Validate() == nil
}

// sniffLayer tells the format of a docker archive's layer from its first
// bytes: gzip, zstd, or else an uncompressed tar.
func sniffLayer(ra io.ReaderAt, m *member) (layerFormat, error) {
	var magic [4]byte
	n, err := ra.ReadAt(magic[:min(int64(len(magic)), m.size)], m.offset)
	if err != nil && n < int(min(int64(len(magic)), m.size)) {
		return notLayer, invalidEntry(m.raw, "%v", err)
	}
	switch {
	case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		return formatGzip, nil
	case n == 4 && magic == [4]byte{0x28, 0xb5, 0x2f, 0xfd}:
		return formatZstd, nil
	}
	return formatTar, nil
}

// layerMediaType is the OCI media type of a layer of format f.
func layerMediaType(f layerFormat) string {
	switch f {
	case formatGzip:
		return ocispec.MediaTypeImageLayerGzip
	case formatZstd:
		return ocispec.MediaTypeImageLayerZstd
	}
	return ocispec.MediaTypeImageLayer
}

// dockerBases is, for each image, the index of its base among imgs, or -1:
// the image with the most layers whose diff_ids are a proper prefix of its
// own, at least one. The diff_ids go into a trie, so the cost is linear in
// the layers of all the images.
func dockerBases(imgs []dockerImage) []int {
	type edge struct {
		from int
		d    digest.Digest
	}
	next := map[edge]int{}
	endsAt := []int{-1} // node -> the first image whose diff_ids end there
	paths := make([][]int, len(imgs))
	for i, img := range imgs {
		n := 0
		for _, d := range img.diffIDs {
			e := edge{n, d}
			c, ok := next[e]
			if !ok {
				c = len(endsAt)
				endsAt = append(endsAt, -1)
				next[e] = c
			}
			n = c
			paths[i] = append(paths[i], n)
		}
		if n != 0 && endsAt[n] < 0 {
			endsAt[n] = i
		}
	}
	out := make([]int, len(imgs))
	for i, p := range paths {
		out[i] = -1
		for _, n := range p[:max(len(p)-1, 0)] {
			if b := endsAt[n]; b >= 0 {
				out[i] = b
			}
		}
	}
	return out
}
