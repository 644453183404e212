// Package errdefs defines the error classes shared by every layer of
// ContainerProvider, and the one place where a class becomes an HTTP status.
//
// Errors are classified by wrapping a class with %w and the name of the
// object concerned:
//
//	fmt.Errorf("blob %s: %w", dgst, errdefs.ErrNotFound)
//
// Callers test the class with errors.Is or the IsX helpers. Handlers return
// errors; a single adapter per server turns them into a status with
// HTTPStatus and writes that server's error envelope.
package errdefs

import (
	"context"
	"errors"
	"net/http"
)

// The error classes. Each maps to exactly one HTTP status in HTTPStatus.
var (
	// ErrInvalidArgument: the request is malformed (name, digest, version,
	// JSON, size). Nothing was changed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: the object exists already. Content writers treat it
	// as success.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: the object is in use or in a state that forbids the call,
	// e.g. an image with dependents.
	ErrConflict = errors.New("conflict")
	// ErrFailedPrecondition: the data does not match what the caller
	// promised, e.g. a digest or size mismatch on commit.
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrUnavailable: the object is busy (a locked ingest ref) or a backend
	// is not reachable; the call may succeed later.
	ErrUnavailable = errors.New("unavailable")
	// ErrOutOfRange: an offset or byte range does not fit the object, e.g.
	// an out-of-order upload chunk or an unsatisfiable Range.
	ErrOutOfRange = errors.New("out of range")
	// ErrTooLarge: a body or object is bigger than the allowed limit.
	ErrTooLarge = errors.New("too large")
	// ErrUnauthenticated: the request carries no valid credentials.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: the credentials are valid but the call is not
	// allowed, e.g. a write to a read-only server.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrNotImplemented: the server does not support the call.
	ErrNotImplemented = errors.New("not implemented")
	// ErrInsufficientStorage: the filesystem has no room left for the
	// write (ENOSPC, EDQUOT, or a free-space check that would leave less
	// than the reserve); the call may succeed once space is freed.
	ErrInsufficientStorage = errors.New("insufficient storage")
	// ErrTooManyRequests: the client made too many calls, or too many that
	// failed, e.g. failed authentications; it may retry later.
	ErrTooManyRequests = errors.New("too many requests")
)

// IsTooManyRequests reports whether err is of class ErrTooManyRequests.
func IsTooManyRequests(err error) bool { return errors.Is(err, ErrTooManyRequests) }

// IsInvalidArgument reports whether err is of class ErrInvalidArgument.
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }

// IsNotFound reports whether err is of class ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err is of class ErrAlreadyExists.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsConflict reports whether err is of class ErrConflict.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsFailedPrecondition reports whether err is of class ErrFailedPrecondition.
func IsFailedPrecondition(err error) bool { return errors.Is(err, ErrFailedPrecondition) }

// IsUnavailable reports whether err is of class ErrUnavailable.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// IsOutOfRange reports whether err is of class ErrOutOfRange.
func IsOutOfRange(err error) bool { return errors.Is(err, ErrOutOfRange) }

// IsTooLarge reports whether err is of class ErrTooLarge.
func IsTooLarge(err error) bool { return errors.Is(err, ErrTooLarge) }

// IsUnauthenticated reports whether err is of class ErrUnauthenticated.
func IsUnauthenticated(err error) bool { return errors.Is(err, ErrUnauthenticated) }

// IsPermissionDenied reports whether err is of class ErrPermissionDenied.
func IsPermissionDenied(err error) bool { return errors.Is(err, ErrPermissionDenied) }

// IsNotImplemented reports whether err is of class ErrNotImplemented.
func IsNotImplemented(err error) bool { return errors.Is(err, ErrNotImplemented) }

// IsInsufficientStorage reports whether err is of class
// ErrInsufficientStorage.
func IsInsufficientStorage(err error) bool { return errors.Is(err, ErrInsufficientStorage) }

// HTTPStatus is the one mapping from error class to HTTP status code. An
// error of no known class is a 500. A nil error is a 200.
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case IsInvalidArgument(err):
		return http.StatusBadRequest
	case IsNotFound(err):
		return http.StatusNotFound
	case IsAlreadyExists(err), IsConflict(err):
		return http.StatusConflict
	case IsFailedPrecondition(err):
		// A digest or size that does not match the data is a bad request
		// in every protocol this project speaks (OCI DIGEST_INVALID).
		return http.StatusBadRequest
	case IsOutOfRange(err):
		return http.StatusRequestedRangeNotSatisfiable
	case IsTooLarge(err):
		return http.StatusRequestEntityTooLarge
	case IsUnauthenticated(err):
		return http.StatusUnauthorized
	case IsPermissionDenied(err):
		return http.StatusForbidden
	case IsNotImplemented(err):
		return http.StatusNotImplemented
	case IsInsufficientStorage(err):
		return http.StatusInsufficientStorage
	case IsTooManyRequests(err):
		return http.StatusTooManyRequests
	case IsUnavailable(err), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.Canceled):
		// nginx's "client closed request"; nobody reads it, but logs do.
		return 499
	default:
		return http.StatusInternalServerError
	}
}
