package catalog

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// blobParams are the validated variables of a blob route.
func blobParams(r *http.Request) (string, digest.Digest, error) {
	repo, err := repoName(r)
	if err != nil {
		return "", "", err
	}
	dgst, err := parseDigest(vars(r)[varDigest])
	if err != nil {
		return "", "", err
	}
	return repo, dgst, nil
}

// etag is the entity tag of content with digest d; content is immutable,
// so the digest is a strong validator.
func etag(d digest.Digest) string { return `"` + d.String() + `"` }

// setBlobHeaders sets the headers that every successful blob read carries.
func setBlobHeaders(w http.ResponseWriter, d digest.Digest) {
	h := w.Header()
	h.Set(headerContentDigest, d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", etag(d))
	h.Set("Accept-Ranges", "bytes")
}

// headBlob answers HEAD /v2/<name>/blobs/<digest>: 200 with the blob's
// Content-Length, or 404 BLOB_UNKNOWN.
func (s *Server) headBlob(w http.ResponseWriter, r *http.Request) error {
	repo, dgst, err := blobParams(r)
	if err != nil {
		return err
	}
	info, err := s.reg.StatBlob(r.Context(), repo, dgst)
	if err != nil {
		return err
	}
	setBlobHeaders(w, dgst)
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	w.WriteHeader(http.StatusOK)
	return nil
}

// getBlob answers GET /v2/<name>/blobs/<digest>: 200 with the blob, or 206
// with Content-Range for a Range request. The Range header is checked
// first, so that a malformed or unsatisfiable one gets 416 in the OCI
// envelope with Content-Range: bytes */<size>; the bytes then go through
// http.ServeContent, on the blob's *os.File when the store gives one, so
// that net/http uses sendfile.
func (s *Server) getBlob(w http.ResponseWriter, r *http.Request) error {
	repo, dgst, err := blobParams(r)
	if err != nil {
		return err
	}
	ra, err := s.reg.OpenBlob(r.Context(), repo, dgst)
	if err != nil {
		return err
	}
	defer ra.Close()
	size := ra.Size()
	if err := checkRange(r, dgst, size); err != nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		return err
	}
	var content io.ReadSeeker
	if f, ok := ra.(interface{ File() *os.File }); ok {
		// Each OpenBlob opens its own file, so seeking it is ours.
		content = f.File()
	} else {
		content = io.NewSectionReader(ra, 0, size)
	}
	setBlobHeaders(w, dgst)
	// A zero modification time leaves Last-Modified out: the ETag is the
	// validator.
	http.ServeContent(w, r, "", time.Time{}, content)
	return nil
}

// checkRange validates the Range header of r against a blob of size bytes
// the way http.ServeContent will read it, so that the errors ServeContent
// would write as plain text get the OCI envelope instead. A Range that
// ServeContent ignores (If-Range that does not match) is not checked.
func checkRange(r *http.Request, d digest.Digest, size int64) error {
	spec := r.Header.Get("Range")
	if spec == "" {
		return nil
	}
	if ir := r.Header.Get("If-Range"); ir != "" && ir != etag(d) {
		return nil
	}
	if err := validateRange(spec, size); err != nil {
		// The code is RANGE_INVALID, like an upload chunk at the wrong
		// offset: not in the spec's list, which allows registry codes.
		return fmt.Errorf("blob %s of %d bytes: Range %q: %v: %w", d, size, spec, err, catalog.ErrRangeInvalid)
	}
	return nil
}

// deleteBlob answers DELETE /v2/<name>/blobs/<digest>: 202.
func (s *Server) deleteBlob(w http.ResponseWriter, r *http.Request) error {
	repo, dgst, err := blobParams(r)
	if err != nil {
		return err
	}
	if err := s.reg.DeleteBlob(r.Context(), repo, dgst); err != nil {
		return err
	}
	middleware.AddFields(r.Context(), logrus.Fields{"digest": dgst})
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// setBlobCreated sets the response of a committed blob: 201, Location of
// the blob, Docker-Content-Digest.
func (s *Server) setBlobCreated(w http.ResponseWriter, repo string, dgst digest.Digest) error {
	loc, err := s.urlFor(RouteBlob, varName, repo, varDigest, dgst.String())
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Location", loc)
	h.Set(headerContentDigest, dgst.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}
