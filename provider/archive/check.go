package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
)

// checker validates the descriptors of an archive against its entries.
type checker struct {
	s         *scanned
	ra        io.ReaderAt
	limits    Limits
	sizes     map[digest.Digest]int64       // size declared for each digest
	used      map[string]bool               // members something refers to
	plan      map[digest.Digest]blobEntry   // the blobs to ingest
	formats   map[digest.Digest]layerFormat // format of each blob declared a layer
	diffIDs   map[digest.Digest][]digest.Digest
	jsonTotal int64
	c         Contents
}

// check validates what scan found. It returns the contents and the blobs to
// ingest, sorted by digest.
func (s *scanned) check(ctx context.Context, ra io.ReaderAt, limits Limits) (Contents, []blobEntry, error) {
	k := &checker{
		s: s, ra: ra, limits: limits,
		sizes:   map[digest.Digest]int64{},
		used:    map[string]bool{},
		plan:    map[digest.Digest]blobEntry{},
		formats: map[digest.Digest]layerFormat{},
		diffIDs: map[digest.Digest][]digest.Digest{},
		c:       Contents{Manifests: map[digest.Digest][]byte{}, Configs: map[digest.Digest][]byte{}, Payloads: map[digest.Digest][]byte{}},
	}
	_, hasIndex := s.files[indexFile]
	_, hasLayout := s.files[ociLayoutFile]
	_, hasDocker := s.files[dockerManifest]
	var images []Image
	var bases []digest.Digest
	var err error
	switch {
	case hasIndex || hasLayout:
		images, bases, err = k.layoutImages()
	case hasDocker:
		images, bases, err = k.dockerImages(ctx)
	default:
		err = fmt.Errorf("archive: index.json and manifest.json are missing: neither an OCI image layout nor a docker archive: %w", errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return Contents{}, nil, err
	}
	// Every file must be something an image uses.
	names := make([]string, 0, len(s.members))
	for name := range s.members {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		m := s.members[name]
		switch {
		case k.used[name], m.link != "", isLegacyMetadata(name):
			// A link that nothing refers to holds no data (skopeo's
			// <id>/layer beside <hex>.tar).
		case strings.HasPrefix(name, blobsDir+"/"):
			return Contents{}, nil, invalidEntry(m.raw, "no descriptor refers to this blob")
		default:
			return Contents{}, nil, invalidEntry(m.raw, "neither part of an OCI image layout nor of a docker archive: nothing refers to it")
		}
	}
	plan := make([]blobEntry, 0, len(k.plan))
	for d, e := range k.plan {
		e.format = k.formats[d]
		plan = append(plan, e)
	}
	slices.SortFunc(plan, func(a, b blobEntry) int { return strings.Compare(string(a.digest), string(b.digest)) })
	k.c.Images, err = parentsFirst(images, bases)
	if err != nil {
		return Contents{}, nil, err
	}
	return k.c, plan, nil
}

func (k *checker) file(name string) ([]byte, error) {
	b, ok := k.s.files[name]
	if !ok {
		return nil, fmt.Errorf("archive: %s is missing: %w", name, errdefs.ErrInvalidArgument)
	}
	return b, nil
}

// layoutImages reads the images of an OCI image layout, cross-checked with
// manifest.json when there is one. It returns them in the order of
// index.json, with the base digest each manifest names.
func (k *checker) layoutImages() ([]Image, []digest.Digest, error) {
	if err := k.checkLayout(); err != nil {
		return nil, nil, err
	}
	index, err := k.index()
	if err != nil {
		return nil, nil, err
	}
	var docker []dockerManifestEntry
	if _, ok := k.s.files[dockerManifest]; ok {
		if docker, err = k.dockerManifest(); err != nil {
			return nil, nil, err
		}
	}
	images := make([]Image, 0, len(index.Manifests))
	bases := make([]digest.Digest, 0, len(index.Manifests))
	sigs := map[digest.Digest]*Signatures{}
	for i, desc := range index.Manifests {
		if of, ok := signatureTarget(desc); ok {
			sig, err := k.signatures(i, desc)
			if err != nil {
				return nil, nil, err
			}
			sigs[of] = sig
			continue
		}
		img, base, err := k.image(i, desc)
		if err != nil {
			return nil, nil, err
		}
		images = append(images, img)
		bases = append(bases, base)
	}
	for i := range images {
		if sig, ok := sigs[images[i].Manifest.Digest]; ok {
			images[i].Signatures = sig
			delete(sigs, images[i].Manifest.Digest)
		}
	}
	for d := range sigs {
		return nil, nil, fmt.Errorf("index.json: the signatures %s name no image of the archive: %w", find.SignatureTag(d.String()), errdefs.ErrInvalidArgument)
	}
	if docker != nil {
		if err := k.crossCheck(images, bases, docker); err != nil {
			return nil, nil, err
		}
	}
	return images, bases, nil
}

func (k *checker) checkLayout() error {
	b, err := k.file(ociLayoutFile)
	if err != nil {
		return err
	}
	var l ocispec.ImageLayout
	if err := json.Unmarshal(b, &l); err != nil {
		return invalidEntry(ociLayoutFile, "%v", err)
	}
	if l.Version != ocispec.ImageLayoutVersion {
		return invalidEntry(ociLayoutFile, "image layout version %q, want %q", l.Version, ocispec.ImageLayoutVersion)
	}
	return nil
}

func (k *checker) index() (ocispec.Index, error) {
	b, err := k.file(indexFile)
	if err != nil {
		return ocispec.Index{}, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return ocispec.Index{}, invalidEntry(indexFile, "%v", err)
	}
	if idx.SchemaVersion != 2 {
		return ocispec.Index{}, invalidEntry(indexFile, "schemaVersion %d, want 2", idx.SchemaVersion)
	}
	if len(idx.Manifests) == 0 {
		return ocispec.Index{}, invalidEntry(indexFile, "no manifest")
	}
	return idx, nil
}

func (k *checker) dockerManifest() ([]dockerManifestEntry, error) {
	b, err := k.file(dockerManifest)
	if err != nil {
		return nil, err
	}
	var m []dockerManifestEntry
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, invalidEntry(dockerManifest, "%v", err)
	}
	if len(m) == 0 {
		return nil, invalidEntry(dockerManifest, "no image")
	}
	return m, nil
}

// refer records that desc refers to the blob blobs/<alg>/<hex>, which must
// be in the archive with the declared size unless optional.
func (k *checker) refer(what string, desc ocispec.Descriptor, optional bool) error {
	if err := validateDescriptor(what, desc); err != nil {
		return err
	}
	d := desc.Digest
	if prev, ok := k.sizes[d]; ok && prev != desc.Size {
		return fmt.Errorf("%s: blob %s declared with sizes %d and %d: %w", what, d, prev, desc.Size, errdefs.ErrInvalidArgument)
	}
	k.sizes[d] = desc.Size
	m, ok := k.s.members[blobPath(d)]
	if !ok {
		if optional {
			return nil
		}
		return fmt.Errorf("%s: blob %s is missing (no entry %s): %w", what, d, blobPath(d), errdefs.ErrInvalidArgument)
	}
	if m.size != desc.Size {
		return invalidEntry(m.raw, "%d bytes, but %s declares %d", m.size, what, desc.Size)
	}
	k.used[m.name] = true
	k.plan[d] = blobEntry{name: m.raw, digest: d, offset: m.offset, size: m.size}
	return nil
}

// layer records the format that the media type of layer desc names; a
// blob declared as layers of two formats is refused.
func (k *checker) layer(what string, desc ocispec.Descriptor) error {
	f, err := layerFormatOf(desc.MediaType)
	if err != nil {
		return fmt.Errorf("%s: blob %s: %w", what, desc.Digest, err)
	}
	return k.layerFormat(what, desc.Digest, f)
}

func (k *checker) layerFormat(what string, d digest.Digest, f layerFormat) error {
	if prev, ok := k.formats[d]; ok && prev != f {
		return fmt.Errorf("%s: blob %s is declared a %s layer and a %s layer: %w", what, d, prev, f, errdefs.ErrInvalidArgument)
	}
	k.formats[d] = f
	return nil
}

// readMember reads a manifest or config of at most Limits.MaxJSON bytes,
// counted against Limits.MaxJSONTotal.
func (k *checker) readMember(what string, m *member) ([]byte, error) {
	if m.size > k.limits.MaxJSON {
		return nil, invalidEntry(m.raw, "%s: %d bytes, over the JSON limit of %d", what, m.size, k.limits.MaxJSON)
	}
	k.jsonTotal += m.size
	if k.jsonTotal > k.limits.MaxJSONTotal {
		return nil, fmt.Errorf("archive: manifests and configs over %d bytes: %w", k.limits.MaxJSONTotal, errdefs.ErrInvalidArgument)
	}
	b := make([]byte, m.size)
	if _, err := k.ra.ReadAt(b, m.offset); err != nil && !(errors.Is(err, io.EOF) && len(b) == 0) {
		return nil, invalidEntry(m.raw, "%v", err)
	}
	return b, nil
}

// readJSON reads and verifies a manifest or config blob.
func (k *checker) readJSON(what string, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > k.limits.MaxJSON {
		return nil, fmt.Errorf("%s: blob %s: %d bytes, over the JSON limit of %d: %w", what, desc.Digest, desc.Size, k.limits.MaxJSON, errdefs.ErrInvalidArgument)
	}
	if err := k.refer(what, desc, false); err != nil {
		return nil, err
	}
	m := k.s.members[blobPath(desc.Digest)]
	b, err := k.readMember(what, m)
	if err != nil {
		return nil, err
	}
	if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest {
		return nil, invalidEntry(m.raw, "%s: bytes have digest %s", what, got)
	}
	return b, nil
}

// image checks entry i of index.json and the manifest and config it names.
// It returns the image, named from the entry's annotations, and the base
// image digest its manifest names.
func (k *checker) image(i int, desc ocispec.Descriptor) (Image, digest.Digest, error) {
	what := fmt.Sprintf("index.json manifest %d", i)
	if !isManifestType(desc.MediaType) {
		return Image{}, "", fmt.Errorf("%s: media type %q is not an image manifest: %w", what, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	b, ok := k.c.Manifests[desc.Digest]
	if ok {
		if k.sizes[desc.Digest] != desc.Size {
			return Image{}, "", fmt.Errorf("%s: blob %s declared with sizes %d and %d: %w", what, desc.Digest, k.sizes[desc.Digest], desc.Size, errdefs.ErrInvalidArgument)
		}
	} else {
		var err error
		if b, err = k.readJSON(what, desc); err != nil {
			return Image{}, "", err
		}
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Image{}, "", fmt.Errorf("%s: manifest %s: %v: %w", what, desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	if m.SchemaVersion != 2 {
		return Image{}, "", fmt.Errorf("%s: manifest %s: schemaVersion %d, want 2: %w", what, desc.Digest, m.SchemaVersion, errdefs.ErrInvalidArgument)
	}
	if m.MediaType != "" && m.MediaType != desc.MediaType {
		return Image{}, "", fmt.Errorf("%s: manifest %s: media type %q, index.json says %q: %w", what, desc.Digest, m.MediaType, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	k.c.Manifests[desc.Digest] = b

	mwhat := fmt.Sprintf("manifest %s", desc.Digest)
	if !isConfigType(m.Config.MediaType) {
		return Image{}, "", fmt.Errorf("%s: config media type %q is not an image config: %w", mwhat, m.Config.MediaType, errdefs.ErrInvalidArgument)
	}
	if _, ok := k.c.Configs[m.Config.Digest]; !ok {
		cb, err := k.readJSON(mwhat+" config", m.Config)
		if err != nil {
			return Image{}, "", err
		}
		var cfg ocispec.Image
		if err := json.Unmarshal(cb, &cfg); err != nil {
			return Image{}, "", fmt.Errorf("%s: config %s: %v: %w", mwhat, m.Config.Digest, err, errdefs.ErrInvalidArgument)
		}
		k.c.Configs[m.Config.Digest] = cb
		k.diffIDs[m.Config.Digest] = cfg.RootFS.DiffIDs
	} else if err := k.refer(mwhat+" config", m.Config, false); err != nil {
		return Image{}, "", err
	}
	for j, l := range m.Layers {
		what := fmt.Sprintf("%s layer %d", mwhat, j)
		if err := k.refer(what, l, isNonDistributable(l.MediaType)); err != nil {
			return Image{}, "", err
		}
		if err := k.layer(what, l); err != nil {
			return Image{}, "", err
		}
	}
	img := Image{Manifest: desc, Config: m.Config, Layers: m.Layers}
	img.RefName = desc.Annotations[AnnotationContainerdName]
	if ref := desc.Annotations[ocispec.AnnotationRefName]; img.RefName == "" {
		if isTagOnly(ref) {
			img.Tag = ref
		} else {
			img.RefName = ref
		}
	}
	return img, digest.Digest(m.Annotations[ocispec.AnnotationBaseImageDigest]), nil
}

// signatureTarget reports whether an entry of index.json is a cosign
// signature manifest, by its ref.name "sha256-<hex>.sig", and the digest
// of the manifest it signs.
func signatureTarget(desc ocispec.Descriptor) (digest.Digest, bool) {
	d, ok := find.SignatureTarget(desc.Annotations[ocispec.AnnotationRefName])
	return digest.Digest(d), ok
}

// signatures checks a signature manifest of index.json: an OCI manifest
// whose config and layers are small JSON blobs of the archive (the
// layers, cosign's simple signing payloads, are kept in Payloads).
func (k *checker) signatures(i int, desc ocispec.Descriptor) (*Signatures, error) {
	what := fmt.Sprintf("index.json manifest %d (signatures)", i)
	if desc.MediaType != ocispec.MediaTypeImageManifest {
		return nil, fmt.Errorf("%s: media type %q, want %s: %w", what, desc.MediaType, ocispec.MediaTypeImageManifest, errdefs.ErrInvalidArgument)
	}
	b, err := k.readJSON(what, desc)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil || m.SchemaVersion != 2 {
		return nil, fmt.Errorf("%s: manifest %s is not an OCI manifest: %w", what, desc.Digest, errdefs.ErrInvalidArgument)
	}
	k.c.Manifests[desc.Digest] = b
	if _, err := k.readJSON(what+" config", m.Config); err != nil {
		return nil, err
	}
	for j, l := range m.Layers {
		if l.Size > MaxSignaturePayload {
			return nil, fmt.Errorf("%s: layer %d: %d bytes, over %d: %w", what, j, l.Size, MaxSignaturePayload, errdefs.ErrInvalidArgument)
		}
		p, err := k.readJSON(fmt.Sprintf("%s layer %d", what, j), l)
		if err != nil {
			return nil, err
		}
		k.c.Payloads[l.Digest] = p
	}
	return &Signatures{Manifest: ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}, Config: m.Config, Layers: m.Layers}, nil
}

// crossCheck requires manifest.json to describe the images of index.json
// that are no other image's base (as Write lists them): the same configs
// with the same layers. A base image may appear in index.json alone. Tags
// may differ (docker writes full names, the OCI ref.name may be a tag
// only); an image that index.json does not name takes the first of its
// RepoTags.
func (k *checker) crossCheck(images []Image, bases []digest.Digest, docker []dockerManifestEntry) error {
	key := func(config string, layers []string) string {
		return config + "\n" + strings.Join(layers, "\n")
	}
	imageKey := func(img Image) string {
		layers := make([]string, 0, len(img.Layers))
		for _, l := range img.Layers {
			layers = append(layers, blobPath(l.Digest))
		}
		return key(blobPath(img.Config.Digest), layers)
	}
	fromIndex := map[string]bool{}
	for _, img := range images {
		fromIndex[imageKey(img)] = true
	}
	fromDocker := map[string][]string{}
	for i, e := range docker {
		k := key(path.Clean(e.Config), cleanPaths(e.Layers))
		if !fromIndex[k] {
			return invalidEntry(dockerManifest, "image %d (config %s, tags %v) matches no image of index.json with the same config and layers", i, e.Config, e.RepoTags)
		}
		if _, ok := fromDocker[k]; !ok {
			fromDocker[k] = e.RepoTags
		}
	}
	facts := make([]imageFacts, len(images))
	for i, img := range images {
		ids, known := k.diffIDs[img.Config.Digest]
		facts[i] = imageFacts{digest: img.Manifest.Digest, base: bases[i], diffIDs: ids, known: known}
	}
	base := baseImages(facts)
	for i := range images {
		img := &images[i]
		tags, listed := fromDocker[imageKey(*img)]
		if !listed && !base[i] {
			return invalidEntry(dockerManifest, "lists no image for index.json manifest %s (%q)", img.Manifest.Digest, img.RefName)
		}
		if img.RefName == "" && len(tags) > 0 {
			img.RefName = tags[0]
		}
	}
	return nil
}

func cleanPaths(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = path.Clean(p)
	}
	return out
}

// parentsFirst orders images so that an image comes after the images its
// base digest names, keeping the order otherwise.
func parentsFirst(images []Image, bases []digest.Digest) ([]Image, error) {
	byDigest := map[digest.Digest][]int{}
	for i, img := range images {
		byDigest[img.Manifest.Digest] = append(byDigest[img.Manifest.Digest], i)
	}
	const (
		unvisited = iota
		visiting
		done
	)
	state := make([]int, len(images))
	out := make([]Image, 0, len(images))
	var visit func(i int) error
	visit = func(i int) error {
		switch state[i] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("image %s: its base images form a cycle: %w", images[i].Manifest.Digest, errdefs.ErrInvalidArgument)
		}
		state[i] = visiting
		for _, p := range byDigest[bases[i]] {
			if err := visit(p); err != nil {
				return err
			}
		}
		state[i] = done
		out = append(out, images[i])
		return nil
	}
	for i := range images {
		if err := visit(i); err != nil {
			return nil, err
		}
	}
	return out, nil
}
