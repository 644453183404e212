package publish

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// PackedLayer is a layer that PackDir produced.
type PackedLayer struct {
	// Descriptor is the blob's media type (tar+gzip, or tar with
	// CompressionNone), digest and size, as the sink reported them.
	Descriptor ocispec.Descriptor
	// DiffID is the digest of the uncompressed tar.
	DiffID digest.Digest
}

// PackDir packs the directory dir into a layer the way Publish packs a
// directory given to LayerFromPath (a deterministic tar: entries sorted,
// every mtime created, uid and gid 0, fixed modes), compresses it with c,
// and streams the blob into sink as it is produced.
//
// sink reads r to its end and returns the digest and size of what it read;
// if it stops early with an error, packing stops too. Nothing is buffered
// whole: memory stays flat whatever the size of dir. A directory that holds
// anything other than files, directories and symbolic links is an
// errdefs.ErrInvalidArgument error, found before sink sees a byte. The
// diff_id is computed on the way.
func PackDir(ctx context.Context, dir string, created time.Time, c Compression,
	sink func(r io.Reader) (digest.Digest, int64, error)) (PackedLayer, error) {
	if c != CompressionGzip && c != CompressionNone {
		return PackedLayer{}, fmt.Errorf("compression %v: %w", c, errdefs.ErrInvalidArgument)
	}
	src := dirSource{dir: dir}
	if err := src.check(); err != nil {
		return PackedLayer{}, err
	}
	l, err := streamTar(ctx, src, created, c, sink)
	if err != nil {
		return PackedLayer{}, err
	}
	return PackedLayer{Descriptor: l.desc, DiffID: l.diffID}, nil
}
