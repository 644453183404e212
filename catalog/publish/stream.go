package publish

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// layerResult is a layer as the manifest and the config see it.
type layerResult struct {
	desc   ocispec.Descriptor
	diffID digest.Digest
}

// sink consumes a blob stream to its end and returns its digest and size.
type sink func(r io.Reader) (digest.Digest, int64, error)

// hashSink only hashes the blob.
func hashSink(r io.Reader) (digest.Digest, int64, error) {
	d := digest.SHA256.Digester()
	n, err := io.Copy(d.Hash(), r)
	return d.Digest(), n, err
}

// uploadSink streams the blob into repo; the target computes its digest.
func uploadSink(ctx context.Context, t Target, repo string) sink {
	return func(r io.Reader) (digest.Digest, int64, error) {
		info, err := t.PutBlob(ctx, repo, "", -1, r)
		return info.Digest, info.Size, err
	}
}

// publishLayer puts the image's own layer into the repository. When the
// version's tag exists already (exists), the layer is first only hashed:
// if the repository holds that blob, nothing is uploaded.
func publishLayer(ctx context.Context, t Target, p plan, c Compression, exists bool) (layerResult, error) {
	if exists {
		l, err := streamLayer(ctx, p.src, p.created, c, hashSink)
		if err != nil {
			return layerResult{}, err
		}
		if _, err := t.StatBlob(ctx, p.repo, l.desc.Digest); err == nil {
			return l, nil
		} else if !errdefs.IsNotFound(err) {
			return layerResult{}, fmt.Errorf("%s: blob %s: %w", p.src.describe(), l.desc.Digest, err)
		}
	}
	l, err := streamLayer(ctx, p.src, p.created, c, uploadSink(ctx, t, p.repo))
	if err != nil {
		return layerResult{}, fmt.Errorf("image %s:%s: %w", p.repo, p.version, err)
	}
	return l, nil
}

// streamLayer runs one pass over a layer source into sink.
func streamLayer(ctx context.Context, src layerSource, created time.Time, c Compression, sk sink) (layerResult, error) {
	switch s := src.(type) {
	case tarSource:
		return streamTar(ctx, s, created, c, sk)
	case fileSource:
		return streamFile(ctx, s, sk)
	}
	return layerResult{}, fmt.Errorf("%s: unknown layer source: %w", src.describe(), errdefs.ErrInvalidArgument)
}

// streamTar pipes tar -> (diff_id hash) -> gzip -> sink. The tar is written
// by a goroutine; the sink reads in the caller's goroutine.
func streamTar(ctx context.Context, src tarSource, created time.Time, c Compression, sk sink) (layerResult, error) {
	pr, pw := io.Pipe()
	diff := digest.SHA256.Digester()
	done := make(chan error, 1)
	go func() {
		var err error
		if c == CompressionGzip {
			zw, zerr := gzip.NewWriterLevel(pw, gzipLevel)
			if zerr != nil {
				err = zerr
			} else {
				// The zero header has no name and no mtime, so the
				// stream depends on the tar bytes alone.
				err = src.writeTar(io.MultiWriter(diff.Hash(), zw), created)
				if cerr := zw.Close(); err == nil {
					err = cerr
				}
			}
		} else {
			err = src.writeTar(pw, created)
		}
		pw.CloseWithError(err) // nil: the reader sees io.EOF
		done <- err
	}()
	dgst, size, err := sk(ctxReader{ctx: ctx, r: pr})
	pr.CloseWithError(errSinkDone) // stops the writer if the sink stopped early
	// A writer error is the root cause of a sink error that follows it.
	if werr := <-done; werr != nil && !errors.Is(werr, errSinkDone) {
		err = werr
	}
	if err != nil {
		return layerResult{}, fmt.Errorf("%s: %w", src.describe(), err)
	}
	res := layerResult{
		desc:   ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: dgst, Size: size},
		diffID: dgst,
	}
	if c == CompressionGzip {
		res.desc.MediaType = ocispec.MediaTypeImageLayerGzip
		res.diffID = diff.Digest()
	}
	return res, nil
}

// streamFile sends a layer file as it is. For a gzip file, the bytes are
// also teed into a decompressor whose output is hashed: the diff_id is the
// digest of the decompressed stream.
func streamFile(ctx context.Context, src fileSource, sk sink) (layerResult, error) {
	f, err := os.Open(src.path)
	if err != nil {
		return layerResult{}, fmt.Errorf("%s: %w", src.describe(), err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	gz, err := isGzip(br)
	if err != nil {
		return layerResult{}, fmt.Errorf("%s: %w", src.describe(), err)
	}
	if !gz {
		dgst, size, err := sk(ctxReader{ctx: ctx, r: br})
		if err != nil {
			return layerResult{}, fmt.Errorf("%s: %w", src.describe(), err)
		}
		return layerResult{
			desc:   ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: dgst, Size: size},
			diffID: dgst,
		}, nil
	}

	pr, pw := io.Pipe()
	diff := digest.SHA256.Digester()
	done := make(chan error, 1)
	go func() {
		zr, err := gzip.NewReader(pr)
		if err == nil {
			_, err = io.Copy(diff.Hash(), zr)
			zr.Close()
		}
		if err == nil {
			// Drain what follows the last member, if anything, so
			// the tee never blocks.
			_, err = io.Copy(io.Discard, pr)
		}
		pr.CloseWithError(err)
		done <- err
	}()
	dgst, size, err := sk(ctxReader{ctx: ctx, r: io.TeeReader(br, pw)})
	if err != nil {
		pw.CloseWithError(errSinkDone)
	} else {
		pw.Close()
	}
	// A decompression error is the root cause of a sink error that
	// follows it (the tee fails once the decompressor has stopped).
	if derr := <-done; derr != nil && !errors.Is(derr, errSinkDone) {
		err = fmt.Errorf("not a valid gzip stream: %v: %w", derr, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return layerResult{}, fmt.Errorf("%s: %w", src.describe(), err)
	}
	return layerResult{
		desc:   ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: dgst, Size: size},
		diffID: diff.Digest(),
	}, nil
}
