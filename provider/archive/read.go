package archive

import (
	"archive/tar"
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
	"github.com/containerprovider/containerprovider/store/content"
)

// Contents is what Prepare (or Read) found, once every check passed and
// every blob was verified.
type Contents struct {
	// Images are the images of index.json, each cross-checked with the
	// manifest it names and with manifest.json. Parents come first: an image
	// whose manifest annotation org.opencontainers.image.base.digest names
	// another image of the archive comes after it. Otherwise the order is
	// that of index.json.
	Images []Image
	// Manifests holds the bytes of every manifest (each at most
	// Limits.MaxJSON), so that callers need not reread them.
	Manifests map[digest.Digest][]byte
	// Configs holds the bytes of every config (each at most Limits.MaxJSON).
	Configs map[digest.Digest][]byte
}

// Read validates the tar archive held by ra (size bytes, typically a file)
// and ingests its blobs into cs: it is Prepare, then Commit. It changes cs
// only in the commit.
func Read(ctx context.Context, ra io.ReaderAt, size int64, cs content.Store, limits Limits) (Contents, error) {
	pr, err := Prepare(ctx, ra, size, cs, limits)
	if err != nil {
		return Contents{}, err
	}
	if err := pr.Commit(ctx); err != nil {
		return Contents{}, err
	}
	return pr.Contents, nil
}

// Prepare validates the tar archive held by ra (size bytes, typically a
// file) and writes its blobs into ingests of cs, verified and not
// committed. It works in two steps:
//
//  1. Scan every tar header and check the archive against its descriptors.
//     Refused with an ErrInvalidArgument-class error naming the entry or
//     blob: names with "..", absolute or non-canonical names, symlinks, hard
//     links, devices, sparse files and any type other than regular files and
//     directories; duplicate entries; entries that are neither part of an
//     OCI layout nor of a docker archive; a missing oci-layout, index.json
//     or manifest.json; JSON (those files, manifests, configs) that does not
//     parse or exceeds Limits.MaxJSON; blob entries not named
//     blobs/<sha256|sha512>/<hex>, whose size disagrees with their
//     descriptors, or that no descriptor refers to; a blob a descriptor
//     refers to that is missing (except a layer with a non-distributable
//     media type); a layer whose media type is not a tar, tar+gzip or
//     tar+zstd layer, or a blob declared as layers of two formats; a
//     manifest.json that disagrees with index.json on the configs and layers
//     of the images; more than Limits.MaxEntries entries or an archive over
//     Limits.MaxTotal bytes; a truncated archive; bytes after the end of the
//     tar that are not zero.
//  2. Stream each blob that cs does not hold yet from ra into a content
//     writer that hashes as it writes, and check the bytes of every layer as
//     the format its media type names (a whole tar, compressed or not) on
//     another goroutine, in the same pass; a layer that cs holds already is
//     checked from ra. A digest mismatch or a layer that is not what it
//     claims is an ErrInvalidArgument naming the blob. Writers are closed,
//     not committed.
//
// A failure aborts every ingest Prepare opened: cs is left as it was. On
// success the caller either commits the blobs (Prepared.Commit) or
// discards them (Prepared.Abort). Prepare never writes outside cs, and
// never uses an entry name as a file path.
func Prepare(ctx context.Context, ra io.ReaderAt, size int64, cs content.Store, limits Limits) (*Prepared, error) {
	limits = limits.withDefaults()
	if size < 0 {
		return nil, fmt.Errorf("archive: negative size %d: %w", size, errdefs.ErrInvalidArgument)
	}
	if size > limits.MaxTotal {
		return nil, fmt.Errorf("archive: %d bytes, over the limit of %d: %w", size, limits.MaxTotal, errdefs.ErrInvalidArgument)
	}
	s, err := scan(ctx, ra, size, limits)
	if err != nil {
		return nil, err
	}
	c, plan, err := s.check(ra, limits)
	if err != nil {
		return nil, err
	}
	pending, err := ingest(ctx, ra, cs, plan)
	if err != nil {
		return nil, err
	}
	return &Prepared{Contents: c, cs: cs, pending: pending}, nil
}

// Prepared is an archive that Prepare validated, whose blobs wait in
// ingests of the store. It is not safe for concurrent use.
type Prepared struct {
	// Contents is what the archive holds.
	Contents Contents
	cs       content.Store
	pending  []pendingBlob
}

// Blobs lists, once each, the digests of every blob the images of the
// archive reference (manifests, configs and layers, whether the archive
// brought them or the store held them already): what a caller leases
// against garbage collection from the commit until its records are
// written.
func (pr *Prepared) Blobs() []digest.Digest {
	seen := map[digest.Digest]bool{}
	var out []digest.Digest
	add := func(d digest.Digest) {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	for _, img := range pr.Contents.Images {
		add(img.Manifest.Digest)
		add(img.Config.Digest)
		for _, l := range img.Layers {
			add(l.Digest)
		}
	}
	return out
}

// Commit commits the verified blobs. It fails only on I/O errors (or when
// ctx ends); the blobs committed before such a failure stay in the store
// unreferenced, for garbage collection, and the others are aborted.
func (pr *Prepared) Commit(ctx context.Context) error {
	for i, p := range pr.pending {
		if err := ctx.Err(); err != nil {
			pr.abort(ctx, pr.pending[i:])
			return err
		}
		if err := commitBlob(ctx, pr.cs, p); err != nil {
			pr.abort(ctx, pr.pending[i:])
			return err
		}
	}
	pr.pending = nil
	return nil
}

// Abort discards the ingests of the blobs that were not committed.
func (pr *Prepared) Abort(ctx context.Context) {
	pr.abort(ctx, pr.pending)
	pr.pending = nil
}

func (pr *Prepared) abort(ctx context.Context, pending []pendingBlob) {
	actx := context.WithoutCancel(ctx)
	for _, p := range pending {
		_ = pr.cs.Abort(actx, p.ref) // NotFound: committed or never created
	}
}

// blobEntry is where a blob's data sits in the archive.
type blobEntry struct {
	name   string
	digest digest.Digest
	offset int64 // of the data, from the start of the archive
	size   int64
	// format is what the bytes are when descriptors declare the blob a
	// layer; notLayer otherwise.
	format layerFormat
}

// scanned is what the scan of the tar headers found.
type scanned struct {
	blobs map[digest.Digest]blobEntry
	files map[string][]byte // oci-layout, index.json, manifest.json
}

func invalidEntry(name, format string, args ...any) error {
	return fmt.Errorf("archive entry %q: %s: %w", name, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

// scan reads every tar header, checking names, types and limits, and keeps
// the small JSON files and the position of every blob.
func scan(ctx context.Context, ra io.ReaderAt, size int64, limits Limits) (*scanned, error) {
	s := &scanned{blobs: map[digest.Digest]blobEntry{}, files: map[string][]byte{}}
	// The section reader is also a Seeker: tar skips the data of each entry
	// by seeking, and its position after Next is where the data starts.
	sr := io.NewSectionReader(ra, 0, size)
	tr := tar.NewReader(sr)
	seen := map[string]bool{}
	for count := 1; ; count++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if hdr != nil {
				return nil, invalidEntry(hdr.Name, "%v", err)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("archive: truncated after %d entries: %w", count-1, errdefs.ErrInvalidArgument)
			}
			return nil, fmt.Errorf("archive: entry %d: %v: %w", count, err, errdefs.ErrInvalidArgument)
		}
		if count > limits.MaxEntries {
			return nil, fmt.Errorf("archive: more than %d entries: %w", limits.MaxEntries, errdefs.ErrInvalidArgument)
		}
		name, err := entryName(hdr)
		if err != nil {
			return nil, err
		}
		if seen[name] {
			return nil, invalidEntry(hdr.Name, "duplicate entry")
		}
		seen[name] = true
		offset, err := sr.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, fmt.Errorf("archive entry %q: %w", hdr.Name, err)
		}
		if hdr.Size < 0 || hdr.Size > size-offset {
			return nil, invalidEntry(hdr.Name, "%d bytes of data run past the end of the archive (truncated)", hdr.Size)
		}
		if hdr.Typeflag == tar.TypeDir {
			if hdr.Size != 0 || !knownDir(name) {
				return nil, invalidEntry(hdr.Name, "unexpected directory")
			}
			continue
		}
		switch name {
		case ociLayoutFile, indexFile, dockerManifest, dockerRepos:
			if hdr.Size > limits.MaxJSON {
				return nil, invalidEntry(hdr.Name, "%d bytes, over the JSON limit of %d", hdr.Size, limits.MaxJSON)
			}
			b := make([]byte, hdr.Size)
			if _, err := io.ReadFull(tr, b); err != nil {
				return nil, invalidEntry(hdr.Name, "truncated: %v", err)
			}
			s.files[name] = b
			continue
		}
		d, err := parseBlobPath(name)
		if err != nil {
			if !strings.HasPrefix(name, blobsDir+"/") {
				return nil, invalidEntry(hdr.Name, "neither part of an OCI image layout nor of a docker archive")
			}
			return nil, err
		}
		s.blobs[d] = blobEntry{name: hdr.Name, digest: d, offset: offset, size: hdr.Size}
	}
	// After the end-of-archive blocks only zero padding may follow.
	pos, err := sr.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	if err := checkZeros(ctx, io.NewSectionReader(ra, pos, size-pos)); err != nil {
		return nil, err
	}
	return s, nil
}

// entryName checks the name and type of an entry and returns its canonical
// name: no "./" prefix, no trailing slash, "." for the root.
func entryName(hdr *tar.Header) (string, error) {
	raw := hdr.Name
	if raw == "" {
		return "", invalidEntry(raw, "empty name")
	}
	if strings.ContainsAny(raw, "\\\x00") {
		return "", invalidEntry(raw, "backslash or NUL in the name")
	}
	if strings.HasPrefix(raw, "/") || (len(raw) >= 2 && raw[1] == ':') {
		return "", invalidEntry(raw, "absolute name")
	}
	for _, el := range strings.Split(raw, "/") {
		if el == ".." {
			return "", invalidEntry(raw, "name escapes the archive (\"..\")")
		}
	}
	switch hdr.Typeflag {
	case tar.TypeReg, '\x00', tar.TypeDir:
	case tar.TypeSymlink:
		return "", invalidEntry(raw, "symlink to %q: only regular files and directories are allowed", hdr.Linkname)
	case tar.TypeLink:
		return "", invalidEntry(raw, "hard link to %q: only regular files and directories are allowed", hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return "", invalidEntry(raw, "device or fifo: only regular files and directories are allowed")
	case tar.TypeGNUSparse:
		return "", invalidEntry(raw, "sparse file: only regular files and directories are allowed")
	default:
		return "", invalidEntry(raw, "entry type %q: only regular files and directories are allowed", hdr.Typeflag)
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return "", invalidEntry(raw, "sparse file: only regular files and directories are allowed")
		}
	}
	name := strings.TrimSuffix(strings.TrimPrefix(raw, "./"), "/")
	if name == "" || name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return "", invalidEntry(raw, "not a file name")
		}
		return ".", nil
	}
	if path.Clean(name) != name {
		return "", invalidEntry(raw, "name is not canonical")
	}
	return name, nil
}

// knownDir reports whether name is a directory an archive may hold.
func knownDir(name string) bool {
	switch name {
	case ".", blobsDir, blobsDir + "/" + string(digest.SHA256), blobsDir + "/" + string(digest.SHA512):
		return true
	}
	return false
}

// checkZeros refuses non-zero bytes after the end of the tar.
func checkZeros(ctx context.Context, r io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		for _, b := range buf[:n] {
			if b != 0 {
				return fmt.Errorf("archive: data after the end of the tar: %w", errdefs.ErrInvalidArgument)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("archive: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// checker validates the descriptors of an archive against its entries.
type checker struct {
	s         *scanned
	ra        io.ReaderAt
	limits    Limits
	sizes     map[digest.Digest]int64       // size declared for each digest
	used      map[digest.Digest]bool        // blob entries some descriptor refers to
	formats   map[digest.Digest]layerFormat // format of each blob declared a layer
	jsonTotal int64
	c         Contents
}

// check validates what scan found. It returns the contents and the blobs to
// ingest, sorted by digest.
func (s *scanned) check(ra io.ReaderAt, limits Limits) (Contents, []blobEntry, error) {
	k := &checker{
		s: s, ra: ra, limits: limits,
		sizes:   map[digest.Digest]int64{},
		used:    map[digest.Digest]bool{},
		formats: map[digest.Digest]layerFormat{},
		c:       Contents{Manifests: map[digest.Digest][]byte{}, Configs: map[digest.Digest][]byte{}},
	}
	if err := k.checkLayout(); err != nil {
		return Contents{}, nil, err
	}
	index, err := k.index()
	if err != nil {
		return Contents{}, nil, err
	}
	docker, err := k.dockerManifest()
	if err != nil {
		return Contents{}, nil, err
	}
	images := make([]Image, 0, len(index.Manifests))
	bases := make([]digest.Digest, 0, len(index.Manifests))
	for i, desc := range index.Manifests {
		img, base, err := k.image(i, desc)
		if err != nil {
			return Contents{}, nil, err
		}
		images = append(images, img)
		bases = append(bases, base)
	}
	var plan []blobEntry
	for d, e := range s.blobs {
		if !k.used[d] {
			return Contents{}, nil, invalidEntry(e.name, "no descriptor refers to this blob")
		}
		e.format = k.formats[d]
		plan = append(plan, e)
	}
	slices.SortFunc(plan, func(a, b blobEntry) int { return strings.Compare(a.name, b.name) })
	if err := crossCheck(images, docker); err != nil {
		return Contents{}, nil, err
	}
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

// refer records that desc refers to a blob, which must be in the archive
// with the declared size unless optional.
func (k *checker) refer(what string, desc ocispec.Descriptor, optional bool) error {
	if err := validateDescriptor(what, desc); err != nil {
		return err
	}
	d := desc.Digest
	if prev, ok := k.sizes[d]; ok && prev != desc.Size {
		return fmt.Errorf("%s: blob %s declared with sizes %d and %d: %w", what, d, prev, desc.Size, errdefs.ErrInvalidArgument)
	}
	k.sizes[d] = desc.Size
	e, ok := k.s.blobs[d]
	if !ok {
		if optional {
			return nil
		}
		return fmt.Errorf("%s: blob %s is missing (no entry %s): %w", what, d, blobPath(d), errdefs.ErrInvalidArgument)
	}
	if e.size != desc.Size {
		return invalidEntry(e.name, "%d bytes, but %s declares %d", e.size, what, desc.Size)
	}
	k.used[d] = true
	return nil
}

// layer records the format that the media type of layer desc names; a
// blob declared as layers of two formats is refused.
func (k *checker) layer(what string, desc ocispec.Descriptor) error {
	f, err := layerFormatOf(desc.MediaType)
	if err != nil {
		return fmt.Errorf("%s: blob %s: %w", what, desc.Digest, err)
	}
	if prev, ok := k.formats[desc.Digest]; ok && prev != f {
		return fmt.Errorf("%s: blob %s is declared a %s layer and a %s layer: %w", what, desc.Digest, prev, f, errdefs.ErrInvalidArgument)
	}
	k.formats[desc.Digest] = f
	return nil
}

// readJSON reads and verifies a manifest or config blob.
func (k *checker) readJSON(what string, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > k.limits.MaxJSON {
		return nil, fmt.Errorf("%s: blob %s: %d bytes, over the JSON limit of %d: %w", what, desc.Digest, desc.Size, k.limits.MaxJSON, errdefs.ErrInvalidArgument)
	}
	if err := k.refer(what, desc, false); err != nil {
		return nil, err
	}
	k.jsonTotal += desc.Size
	if k.jsonTotal > k.limits.MaxJSONTotal {
		return nil, fmt.Errorf("archive: manifests and configs over %d bytes: %w", k.limits.MaxJSONTotal, errdefs.ErrInvalidArgument)
	}
	e := k.s.blobs[desc.Digest]
	b := make([]byte, e.size)
	if _, err := k.ra.ReadAt(b, e.offset); err != nil && !(errors.Is(err, io.EOF) && len(b) == 0) {
		return nil, invalidEntry(e.name, "%v", err)
	}
	if got := desc.Digest.Algorithm().FromBytes(b); got != desc.Digest {
		return nil, invalidEntry(e.name, "%s: bytes have digest %s", what, got)
	}
	return b, nil
}

// image checks entry i of index.json and the manifest and config it names.
// It returns the image and the base image digest its manifest names.
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
	img := Image{
		RefName:  desc.Annotations[ocispec.AnnotationRefName],
		Manifest: desc,
		Config:   m.Config,
		Layers:   m.Layers,
	}
	return img, digest.Digest(m.Annotations[ocispec.AnnotationBaseImageDigest]), nil
}

// crossCheck requires manifest.json to describe the images of index.json
// that are no other image's base (as Write lists them): the same configs
// with the same layers. A base image appears in index.json alone. Tags may
// differ (docker writes full names, the OCI ref.name may be a tag only).
func crossCheck(images []Image, docker []dockerManifestEntry) error {
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
	fromDocker := map[string]bool{}
	for i, e := range docker {
		k := key(e.Config, e.Layers)
		if !fromIndex[k] {
			return invalidEntry(dockerManifest, "image %d (config %s, tags %v) matches no image of index.json with the same config and layers", i, e.Config, e.RepoTags)
		}
		fromDocker[k] = true
	}
	base := baseImages(images)
	for i, img := range images {
		if !fromDocker[imageKey(img)] && !base[i] {
			return invalidEntry(dockerManifest, "lists no image for index.json manifest %s (%q)", img.Manifest.Digest, img.RefName)
		}
	}
	return nil
}

// parentsFirst orders images so that an image comes after the images its
// base digest names, keeping the index order otherwise.
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
