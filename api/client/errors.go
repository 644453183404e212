package client

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/containerprovider/containerprovider/api"
)

// maxErrorBody caps the error body read.
const maxErrorBody = 64 << 10

// Error is an answer of providerd in the v1 error envelope, or any other
// non-success answer.
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// API is the envelope's body: the code, the server's message and, for
	// a refused removal, the dependents.
	API api.Error
	// RequestID is the server's X-Request-Id, to find the request's log
	// line.
	RequestID string
}

// Error is the server's message alone: a readable one-liner.
func (e *Error) Error() string { return e.API.Message }

// Unwrap gives the errdefs class of the code (nil for Internal), so that
// errors.Is(err, errdefs.ErrConflict) holds for a 409 Conflict.
func (e *Error) Unwrap() error { return api.ErrorClass(e.API.Code) }

// decodeError makes the *Error of resp. A body that is not the envelope
// (a proxy's page, say) gets the code of its status and a message made of
// the status and the start of the body.
func decodeError(resp *http.Response) error {
	e := &Error{StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var env api.ErrorResponse
	if json.Unmarshal(data, &env) == nil && env.Error.Code != "" {
		e.API = env.Error
		if e.API.Message == "" {
			e.API.Message = fmt.Sprintf("%s (%s)", http.StatusText(resp.StatusCode), e.API.Code)
		}
		return e
	}
	e.API.Code = statusCode(resp.StatusCode)
	msg := fmt.Sprintf("providerd answered %s", resp.Status)
	if text := strings.Join(strings.Fields(string(data)), " "); text != "" {
		if len(text) > 200 {
			text = text[:200] + "..."
		}
		msg += ": " + text
	}
	e.API.Message = msg
	return e
}

// statusCode is the envelope code of a status, for answers without the
// envelope.
func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return api.CodeInvalidArgument
	case http.StatusUnauthorized:
		return api.CodeUnauthenticated
	case http.StatusForbidden:
		return api.CodePermissionDenied
	case http.StatusNotFound:
		return api.CodeNotFound
	case http.StatusConflict:
		return api.CodeConflict
	case http.StatusRequestEntityTooLarge:
		return api.CodeTooLarge
	case http.StatusRequestedRangeNotSatisfiable:
		return api.CodeOutOfRange
	case http.StatusNotImplemented:
		return api.CodeNotImplemented
	case http.StatusInsufficientStorage:
		return api.CodeInsufficientStorage
	case http.StatusTooManyRequests:
		return api.CodeTooManyRequests
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return api.CodeUnavailable
	default:
		return api.CodeInternal
	}
}
