package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/model"
)

// Blob opens the blob dgst of repo from offset on. With offset > 0 it asks
// for `Range: bytes=<offset>-` and takes a 206 whose Content-Range starts
// at offset; a server that ignores Range and answers 200 has its first
// offset bytes read and discarded, so that the reader always starts at
// offset. An offset past the end is OutOfRange. Redirects (to storage
// backends) are followed; net/http drops the Authorization header when one
// leads to another host.
//
// The blob is streamed, never buffered; its digest is not verified (the
// content store does that). The caller closes the reader. Read errors other
// than io.EOF are of class Unavailable unless ctx ended, and name the blob.
func (c *Client) Blob(ctx context.Context, repo string, dgst digest.Digest, offset int64) (io.ReadCloser, error) {
	what := fmt.Sprintf("source %s: repository %s: blob %s", c.name, repo, dgst)
	fail := func(err error) (io.ReadCloser, error) { return nil, fmt.Errorf("%s: %w", what, err) }
	if err := model.ValidateName(repo); err != nil {
		return fail(err)
	}
	if _, err := model.ParseDigest(string(dgst)); err != nil {
		return fail(err)
	}
	if offset < 0 {
		return fail(fmt.Errorf("negative offset %d: %w", offset, errdefs.ErrInvalidArgument))
	}
	hdr := http.Header{}
	if offset > 0 {
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := c.get(ctx, c.endpoint("/v2/"+repo+"/blobs/"+dgst.String(), nil), pullScope(repo), hdr)
	if err != nil {
		return fail(err)
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		cr := resp.Header.Get("Content-Range")
		if start, ok := contentRangeStart(cr); !ok || start != offset {
			drain(resp)
			return fail(fmt.Errorf("asked for bytes from %d, the server sent Content-Range %q: %w", offset, cr, errdefs.ErrUnavailable))
		}
	case resp.StatusCode == http.StatusOK:
		if offset > 0 {
			n, err := io.CopyN(io.Discard, resp.Body, offset)
			if err != nil {
				_ = resp.Body.Close()
				if errors.Is(err, io.EOF) {
					return fail(fmt.Errorf("offset %d is past the end of the blob (%d bytes): %w", offset, n, errdefs.ErrOutOfRange))
				}
				return fail(fmt.Errorf("skipping to offset %d: %w", offset, transportError(ctx, err)))
			}
		}
	case resp.StatusCode == http.StatusPartialContent:
		drain(resp)
		return fail(fmt.Errorf("a 206 answer to a request without Range: %w", errdefs.ErrUnavailable))
	default:
		return fail(statusError(resp))
	}
	return &blobReader{ctx: ctx, body: resp.Body, what: what}, nil
}

// contentRangeStart parses the first byte position of a Content-Range
// header "bytes <first>-<last>/<size or *>".
func contentRangeStart(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(cr), "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(strings.TrimSpace(rest), "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(first, 10, 64)
	return n, err == nil && n >= 0
}

// blobReader is the body of a blob response, whose read errors carry a
// class and the blob's name.
type blobReader struct {
	ctx  context.Context
	body io.ReadCloser
	what string
}

func (r *blobReader) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: reading: %w", r.what, transportError(r.ctx, err))
	}
	return n, err
}

func (r *blobReader) Close() error { return r.body.Close() }
