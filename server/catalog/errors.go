package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// The OCI error codes catalogd sends. The first ones are the
// distribution-spec's own; the spec lets a registry add its own codes, and
// catalogd uses a few, each next to the case it covers.
const (
	CodeBlobUnknown         = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       = "DIGEST_INVALID"
	CodeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     = "MANIFEST_INVALID"
	CodeManifestUnknown     = "MANIFEST_UNKNOWN"
	CodeNameInvalid         = "NAME_INVALID"
	CodeNameUnknown         = "NAME_UNKNOWN"
	CodeSizeInvalid         = "SIZE_INVALID"
	CodeUnauthorized        = "UNAUTHORIZED"
	CodeDenied              = "DENIED"
	CodeUnsupported         = "UNSUPPORTED"
	CodeTooManyRequests     = "TOOMANYREQUESTS"

	// CodeRangeInvalid: an upload chunk that does not start at the
	// upload's offset, or a blob Range that is malformed or cannot be
	// satisfied (416). Not in the spec's list; the CNCF distribution
	// registry sends the same code for the same cases.
	CodeRangeInvalid = "RANGE_INVALID"
	// CodeTagInvalid: a tag that is not [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
	// Also the distribution registry's.
	CodeTagInvalid = "TAG_INVALID"
	// CodePaginationNumberInvalid: an n query parameter that is not a
	// number >= 0. Also the distribution registry's.
	CodePaginationNumberInvalid = "PAGINATION_NUMBER_INVALID"
	// CodeFindInvalid: find extension options that OneGet would refuse.
	// The message is OneGet's text, the detail holds OneGet's error id.
	CodeFindInvalid = "FIND_INVALID"

	// The fallbacks for errors that carry no catalog sentinel, by class.
	CodeInvalidArgument = "INVALID_ARGUMENT"
	CodeNotFound        = "NOT_FOUND"
	CodeConflict        = "CONFLICT"
	CodeUnavailable     = "UNAVAILABLE"
	CodeUnknown         = "UNKNOWN"
)

// sentinelCodes maps the catalog's protocol errors to their codes. The
// order matters where one error may wrap two sentinels: the more precise
// one comes first.
var sentinelCodes = []struct {
	err  error
	code string
}{
	{catalog.ErrManifestBlobUnknown, CodeManifestBlobUnknown},
	{catalog.ErrManifestTooLarge, CodeSizeInvalid},
	{catalog.ErrManifestInvalid, CodeManifestInvalid},
	{catalog.ErrManifestUnknown, CodeManifestUnknown},
	{catalog.ErrBlobUploadUnknown, CodeBlobUploadUnknown},
	{catalog.ErrBlobUploadInvalid, CodeBlobUploadInvalid},
	{catalog.ErrBlobUnknown, CodeBlobUnknown},
	{catalog.ErrDigestInvalid, CodeDigestInvalid},
	{catalog.ErrDigestMismatch, CodeDigestInvalid},
	{catalog.ErrSizeInvalid, CodeSizeInvalid},
	{catalog.ErrRangeInvalid, CodeRangeInvalid},
	{catalog.ErrNameInvalid, CodeNameInvalid},
	{catalog.ErrNameUnknown, CodeNameUnknown},
	{catalog.ErrTagInvalid, CodeTagInvalid},
	{catalog.ErrUnsupported, CodeUnsupported},
}

// classCodes is the fallback: the code of an error's class.
var classCodes = []struct {
	err  error
	code string
}{
	{errdefs.ErrTooManyRequests, CodeTooManyRequests},
	{errdefs.ErrUnauthenticated, CodeUnauthorized},
	{errdefs.ErrPermissionDenied, CodeDenied},
	{errdefs.ErrNotImplemented, CodeUnsupported},
	{errdefs.ErrTooLarge, CodeSizeInvalid},
	{errdefs.ErrOutOfRange, CodeRangeInvalid},
	// The class of a digest or size that does not match the data.
	{errdefs.ErrFailedPrecondition, CodeDigestInvalid},
	{errdefs.ErrInvalidArgument, CodeInvalidArgument},
	{errdefs.ErrNotFound, CodeNotFound},
	{errdefs.ErrAlreadyExists, CodeConflict},
	{errdefs.ErrConflict, CodeConflict},
	{errdefs.ErrUnavailable, CodeUnavailable},
	{context.DeadlineExceeded, CodeUnavailable},
}

// codedError gives an error an explicit OCI code and detail, for the cases
// the catalog sentinels do not name (find options, pagination). It keeps
// the wrapped error's class.
type codedError struct {
	code   string
	detail any
	err    error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func withCode(code string, detail any, err error) error {
	return &codedError{code: code, detail: detail, err: err}
}

// ociCode finds the code and detail of err: an explicit codedError first,
// then the catalog sentinels, then the error class.
func ociCode(err error) (string, any) {
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code, ce.detail
	}
	for _, sc := range sentinelCodes {
		if errors.Is(err, sc.err) {
			return sc.code, nil
		}
	}
	for _, cc := range classCodes {
		if errors.Is(err, cc.err) {
			return cc.code, nil
		}
	}
	return CodeUnknown, nil
}

// errorBody is the OCI error envelope.
type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// handlerFunc is a catalogd handler. It writes the response on success and
// returns an error otherwise, which writeError turns into the envelope.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// writeError is the one place where an error becomes a response: the
// status is errdefs.HTTPStatus's, the code ociCode's, the message the
// error's text (for 5xx, a generic text with the request id, since the
// error may name server paths; the log has the real one). A HEAD response
// has no body. The error is recorded for the request's log line. When the
// response has already started, only the log remains.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	middleware.SetError(r.Context(), err)
	if middleware.HeaderWritten(w) {
		return
	}
	status := errdefs.HTTPStatus(err)
	code, detail := ociCode(err)
	msg := err.Error()
	if status >= http.StatusInternalServerError && status != http.StatusNotImplemented && status != http.StatusServiceUnavailable {
		msg = fmt.Sprintf("internal server error (request id %s)", middleware.RequestID(r.Context()))
	}
	body, jerr := json.Marshal(errorBody{Errors: []errorEntry{{Code: code, Message: msg, Detail: detail}}})
	if jerr != nil {
		// Only a detail that cannot be encoded gets here.
		body, _ = json.Marshal(errorBody{Errors: []errorEntry{{Code: code, Message: msg}}})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// adapt turns a method-to-handler table into an http.Handler whose errors
// go through writeError.
func (s *Server) adapt(byMethod map[string]handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := byMethod[r.Method]
		if !ok {
			// The router matches methods first; this is a table mismatch.
			s.writeError(w, r, fmt.Errorf("method %s on %s: %w", r.Method, r.URL.Path, errdefs.ErrNotImplemented))
			return
		}
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}
