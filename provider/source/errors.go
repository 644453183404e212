package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// StatusError is an error response of a registry or its token service. Its
// class (Unwrap) follows the status: 400 and other 4xx InvalidArgument, 401
// Unauthenticated, 403 PermissionDenied, 404 NotFound, 416 OutOfRange, 408,
// 429, 5xx and any other unexpected status Unavailable.
type StatusError struct {
	// Status is the HTTP status code.
	Status int
	// Code and Message are those of the first entry of the OCI error
	// envelope, when the body has one.
	Code    string
	Message string
	class   error
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	fmt.Fprintf(&b, ": %v", e.class)
	return b.String()
}

// Unwrap gives the error its class.
func (e *StatusError) Unwrap() error { return e.class }

// statusClass is the error class of an HTTP status that is not a success.
func statusClass(status int) error {
	switch {
	case status == http.StatusUnauthorized:
		return errdefs.ErrUnauthenticated
	case status == http.StatusForbidden:
		return errdefs.ErrPermissionDenied
	case status == http.StatusNotFound:
		return errdefs.ErrNotFound
	case status == http.StatusRequestedRangeNotSatisfiable:
		return errdefs.ErrOutOfRange
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		return errdefs.ErrUnavailable
	case status >= 400 && status < 500:
		return errdefs.ErrInvalidArgument
	default:
		// 5xx, and statuses that make no sense for the request.
		return errdefs.ErrUnavailable
	}
}

// ociEnvelope is the OCI error envelope.
type ociEnvelope struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// statusError reads at most maxErrorBody of resp's body for an OCI error
// envelope, closes it, and returns the *StatusError of resp.
func statusError(resp *http.Response) *StatusError {
	e := &StatusError{Status: resp.StatusCode, class: statusClass(resp.StatusCode)}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	var env ociEnvelope
	if json.Unmarshal(body, &env) == nil && len(env.Errors) > 0 {
		e.Code = sanitize(env.Errors[0].Code, 64)
		e.Message = sanitize(env.Errors[0].Message, 512)
	}
	return e
}

// sanitize keeps a server's text to one line of at most n bytes.
func sanitize(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n] + "..."
	}
	return strings.TrimSpace(s)
}

// transportError classifies an error of http.Client.Do or of a body read:
// Unavailable, unless ctx ended, in which case the error carries ctx's.
//
// A *url.Error loses its URL's path and query: the caller's message names
// the object already (the blob, the manifest), and the host is what tells
// where the request went.
func transportError(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		host := ue.URL
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			host = u.Scheme + "://" + u.Host
		}
		err = &hostError{op: ue.Op, host: host, err: ue.Err}
	}
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(err, cerr) {
			return err
		}
		return fmt.Errorf("%w: %w", err, cerr)
	}
	return fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
}

// hostError is a *url.Error that names the host instead of the URL.
type hostError struct {
	op, host string
	err      error
}

func (e *hostError) Error() string { return e.op + " " + e.host + ": " + e.err.Error() }
func (e *hostError) Unwrap() error { return e.err }

// Timeout reports whether the request timed out, as *url.Error does.
func (e *hostError) Timeout() bool {
	t, ok := e.err.(interface{ Timeout() bool })
	return ok && t.Timeout()
}

func errTooLarge(max int64) error {
	return fmt.Errorf("larger than the limit of %d bytes: %w", max, errdefs.ErrTooLarge)
}
