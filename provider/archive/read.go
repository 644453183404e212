package archive

import (
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

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
	// Payloads holds the bytes of every signature layer (each at most
	// MaxSignaturePayload), verified against its digest.
	Payloads map[digest.Digest][]byte
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
// committed. The archive is one of:
//
//   - an OCI image layout (oci-layout, index.json, blobs/<alg>/<hex>), with
//     or without a manifest.json beside it: what Write, docker save 25 and
//     later, skopeo oci-archive:, crane pull --format oci and oras copy
//     --to-oci-layout write. When manifest.json is there, it must describe
//     the images of index.json (see the checks below), and gives the names
//     of the images that index.json does not name;
//   - a docker archive, with manifest.json and no OCI index: what docker
//     save before 25 (<id>/layer.tar), skopeo docker-archive: (<hex>.tar,
//     with <id>/layer symbolic links beside them) and crane pull's tarball
//     (sha256:<hex> configs, <hex>.tar.gz layers) write. Each image of
//     manifest.json gets an OCI manifest that Prepare makes, deterministic:
//     its config, and its layers with the media type that their bytes show
//     (tar, tar+gzip or tar+zstd). A layer's digest is the one its name
//     says (<hex>.tar, <hex>.tar.gz, sha256:<hex>, blobs/sha256/<hex>), else
//     for an uncompressed layer its config's diff_id, else the digest of its
//     bytes; the bytes are verified against it as for any blob. An image
//     whose diff_ids start with all of another image's of the archive names
//     the longest such image as its base (org.opencontainers.image.base.digest
//     and .name in the manifest made). Its name is the first of its RepoTags.
//
// It works in two steps:
//
//  1. Scan every tar header and check the archive against its descriptors.
//     Refused with an ErrInvalidArgument-class error naming the entry or
//     blob: names with "..", absolute or non-canonical names, hard links,
//     devices, sparse files and any type other than regular files,
//     directories and the symbolic links of a docker archive's legacy
//     layer directories (<id>/layer or <id>/layer.tar, pointing at a file of
//     the archive, never outside it; they are aliases, and nothing is ever
//     followed on disk); duplicate entries; entries that are neither part of
//     an OCI layout nor of a docker archive, or that nothing refers to
//     (docker's legacy <id>/json, <id>/VERSION and repositories excepted);
//     an oci-layout without index.json or the reverse; JSON (those files,
//     manifests, configs) that does not parse or exceeds Limits.MaxJSON;
//     blob entries not named blobs/<sha256|sha512>/<hex>, whose size
//     disagrees with their descriptors, or that no descriptor refers to; a
//     blob a descriptor refers to that is missing (except a layer with a
//     non-distributable media type); a layer whose media type is not a tar,
//     tar+gzip or tar+zstd layer, or a blob declared as layers of two
//     formats; a manifest.json that disagrees with index.json on the configs
//     and layers of the images, or whose configs list another number of
//     diff_ids than the image has layers; more than Limits.MaxEntries
//     entries or an archive over Limits.MaxTotal bytes; a truncated archive;
//     bytes after the end of the tar that are not zero.
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
	c, plan, err := s.check(ctx, ra, limits)
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
