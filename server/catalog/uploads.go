package catalog

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// uploadIDPattern is what an upload id in a URL may look like before the
// registry is asked about it.
var uploadIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// uploadParams are the validated variables of an upload route.
func uploadParams(r *http.Request) (repo, id string, err error) {
	repo, err = repoName(r)
	if err != nil {
		return "", "", err
	}
	id = vars(r)[varUUID]
	if !uploadIDPattern.MatchString(id) {
		return "", "", fmt.Errorf("repository %s: upload %q: %w: %w", repo, id, catalog.ErrBlobUploadUnknown, errdefs.ErrNotFound)
	}
	return repo, id, nil
}

// uploadRange is the Range header of an upload at offset: "0-<last byte>".
// An empty upload is "0-0", as the CNCF distribution registry sends it; the
// conformance suite reads a "0-" prefix from every status response, so the
// header is never left out.
func uploadRange(offset int64) string {
	if offset <= 0 {
		return "0-0"
	}
	return "0-" + strconv.FormatInt(offset-1, 10)
}

// setUploadHeaders sets the headers of an upload in progress: Location
// (where the next request goes), Range and Docker-Upload-UUID.
func (s *Server) setUploadHeaders(w http.ResponseWriter, st catalog.UploadStatus) error {
	loc, err := s.urlFor(RouteUpload, varName, st.Repository, varUUID, st.ID)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Location", loc)
	h.Set("Range", uploadRange(st.Offset))
	h.Set(headerUploadUUID, st.ID)
	return nil
}

// startUpload answers POST /v2/<name>/blobs/uploads/:
//   - ?mount=<digest>[&from=<repo>]: 201 with the blob's Location when the
//     blob can be mounted; otherwise a new upload session (202), as the
//     spec says.
//   - ?digest=<digest> with the blob as the body: a monolithic upload,
//     201.
//   - else: a new upload session, 202 with its Location.
func (s *Server) startUpload(w http.ResponseWriter, r *http.Request) error {
	repo, err := repoName(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	switch {
	case q.Get("mount") != "":
		dgst, err := parseDigest(q.Get("mount"))
		if err != nil {
			return err
		}
		from := q.Get("from")
		if from != "" {
			if err := catalog.ValidateName(from); err != nil {
				return err
			}
		}
		info, err := s.reg.MountBlob(r.Context(), repo, from, dgst)
		switch {
		case err == nil:
			middleware.AddFields(r.Context(), logrus.Fields{"digest": info.Digest, "mounted_from": from})
			return s.setBlobCreated(w, repo, dgst)
		case errdefs.IsNotFound(err):
			// Nothing to mount from: the client pushes the blob instead.
		default:
			return err
		}
	case hasQuery(r, "digest"):
		dgst, err := parseDigest(q.Get("digest"))
		if err != nil {
			return err
		}
		body := middleware.LimitBody(w, r, s.opts.maxBlobSize)
		if body.Exceeded() {
			return body.Err()
		}
		info, err := s.reg.PutBlob(r.Context(), repo, dgst, r.ContentLength, body)
		if err != nil {
			return body.Cause(err)
		}
		middleware.AddFields(r.Context(), logrus.Fields{"digest": info.Digest, "size": info.Size})
		return s.setBlobCreated(w, repo, info.Digest)
	}
	st, err := s.reg.StartUpload(r.Context(), repo)
	if err != nil {
		return err
	}
	if err := s.setUploadHeaders(w, st); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// getUpload answers GET /v2/<name>/blobs/uploads/<uuid>: 204 with the
// Range received so far.
func (s *Server) getUpload(w http.ResponseWriter, r *http.Request) error {
	repo, id, err := uploadParams(r)
	if err != nil {
		return err
	}
	st, err := s.reg.GetUpload(r.Context(), repo, id)
	if err != nil {
		return err
	}
	if err := s.setUploadHeaders(w, st); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// contentRange is the Content-Range of an upload chunk, "<first>-<last>";
// the "bytes " prefix of the response form is accepted too.
type contentRange struct {
	start, end int64
}

// parseContentRange reads the Content-Range header of an upload chunk.
// ok is false when there is none. A chunk whose Content-Length disagrees
// with the range is SIZE_INVALID.
func parseContentRange(r *http.Request, repo, id string) (cr contentRange, ok bool, err error) {
	v := r.Header.Get("Content-Range")
	if v == "" {
		return contentRange{}, false, nil
	}
	spec := strings.TrimPrefix(strings.TrimSpace(v), "bytes ")
	first, last, found := strings.Cut(spec, "-")
	start, err1 := strconv.ParseInt(first, 10, 64)
	end, err2 := strconv.ParseInt(last, 10, 64)
	if !found || err1 != nil || err2 != nil || start < 0 {
		return contentRange{}, false, fmt.Errorf("repository %s: upload %s: malformed Content-Range %q (want <first>-<last>): %w: %w",
			repo, id, v, catalog.ErrBlobUploadInvalid, errdefs.ErrInvalidArgument)
	}
	if start > end {
		return contentRange{}, false, fmt.Errorf("repository %s: upload %s: Content-Range %q ends before it starts: %w: %w",
			repo, id, v, catalog.ErrRangeInvalid, errdefs.ErrOutOfRange)
	}
	if r.ContentLength >= 0 && r.ContentLength != end-start+1 {
		return contentRange{}, false, fmt.Errorf("repository %s: upload %s: Content-Range %q is %d bytes but Content-Length is %d: %w: %w",
			repo, id, v, end-start+1, r.ContentLength, catalog.ErrSizeInvalid, errdefs.ErrInvalidArgument)
	}
	return contentRange{start: start, end: end}, true, nil
}

// writeChunk streams the body of r into the upload, never buffering it:
// at the Content-Range's start when there is one (a start that is not the
// upload's offset gets 416 RANGE_INVALID and changes nothing), else at the
// end. The body may not take the upload over the maximum blob size.
func (s *Server) writeChunk(w http.ResponseWriter, r *http.Request, repo, id string) (catalog.UploadStatus, error) {
	st, err := s.reg.GetUpload(r.Context(), repo, id)
	if err != nil {
		return st, err
	}
	cr, hasRange, err := parseContentRange(r, repo, id)
	if err != nil {
		return st, err
	}
	offset := int64(-1)
	if hasRange {
		if cr.start != st.Offset {
			return st, fmt.Errorf("repository %s: upload %s: chunk starts at %d but the upload is at %d: %w: %w",
				repo, id, cr.start, st.Offset, catalog.ErrRangeInvalid, errdefs.ErrOutOfRange)
		}
		offset = cr.start
	}
	room := s.opts.maxBlobSize - st.Offset
	if room < 0 {
		room = 0
	}
	body := middleware.LimitBody(w, r, room)
	if body.Exceeded() {
		return st, body.Err()
	}
	next, err := s.reg.WriteUpload(r.Context(), repo, id, offset, body)
	if err != nil {
		return st, body.Cause(err)
	}
	return next, nil
}

// patchUpload answers PATCH /v2/<name>/blobs/uploads/<uuid>: 202 with the
// new Range. On 416 the response still carries the upload's Location and
// Range, so the client can resume from the right offset.
func (s *Server) patchUpload(w http.ResponseWriter, r *http.Request) error {
	repo, id, err := uploadParams(r)
	if err != nil {
		return err
	}
	st, err := s.writeChunk(w, r, repo, id)
	if err != nil {
		s.setResumeHeaders(w, r, repo, id, err)
		return err
	}
	if err := s.setUploadHeaders(w, st); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// setResumeHeaders sets the upload headers on a 416, from the upload's
// current state.
func (s *Server) setResumeHeaders(w http.ResponseWriter, r *http.Request, repo, id string, err error) {
	if !errdefs.IsOutOfRange(err) {
		return
	}
	if st, gerr := s.reg.GetUpload(r.Context(), repo, id); gerr == nil {
		_ = s.setUploadHeaders(w, st)
	}
}

// putUpload answers PUT /v2/<name>/blobs/uploads/<uuid>?digest=<digest>:
// the body, if any, is the last chunk; then the upload is verified
// against the digest and committed: 201 with the blob's Location and
// Docker-Content-Digest. A digest that does not match gives 400
// DIGEST_INVALID, and the upload is discarded.
func (s *Server) putUpload(w http.ResponseWriter, r *http.Request) error {
	repo, id, err := uploadParams(r)
	if err != nil {
		return err
	}
	if !hasQuery(r, "digest") {
		return fmt.Errorf("repository %s: upload %s: the digest query parameter is required: %w: %w",
			repo, id, catalog.ErrDigestInvalid, errdefs.ErrInvalidArgument)
	}
	dgst, err := parseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	if r.ContentLength != 0 {
		if _, err := s.writeChunk(w, r, repo, id); err != nil {
			s.setResumeHeaders(w, r, repo, id, err)
			return err
		}
	}
	info, err := s.reg.CommitUpload(r.Context(), repo, id, dgst)
	if err != nil {
		return err
	}
	middleware.AddFields(r.Context(), logrus.Fields{"digest": info.Digest, "size": info.Size})
	return s.setBlobCreated(w, repo, dgst)
}

// cancelUpload answers DELETE /v2/<name>/blobs/uploads/<uuid>: 204.
func (s *Server) cancelUpload(w http.ResponseWriter, r *http.Request) error {
	repo, id, err := uploadParams(r)
	if err != nil {
		return err
	}
	if err := s.reg.CancelUpload(r.Context(), repo, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
