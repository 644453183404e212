package errdefs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestHTTPStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, http.StatusOK},
		{"invalid", fmt.Errorf("name %q: %w", "A B", ErrInvalidArgument), http.StatusBadRequest},
		{"not found wrapped twice", fmt.Errorf("repo x: %w", fmt.Errorf("blob y: %w", ErrNotFound)), http.StatusNotFound},
		{"already exists", ErrAlreadyExists, http.StatusConflict},
		{"conflict", ErrConflict, http.StatusConflict},
		{"failed precondition", ErrFailedPrecondition, http.StatusBadRequest},
		{"unavailable", ErrUnavailable, http.StatusServiceUnavailable},
		{"out of range", ErrOutOfRange, http.StatusRequestedRangeNotSatisfiable},
		{"too large", ErrTooLarge, http.StatusRequestEntityTooLarge},
		{"unauthenticated", ErrUnauthenticated, http.StatusUnauthorized},
		{"permission denied", ErrPermissionDenied, http.StatusForbidden},
		{"not implemented", ErrNotImplemented, http.StatusNotImplemented},
		{"insufficient storage", fmt.Errorf("root /r: %w", ErrInsufficientStorage), http.StatusInsufficientStorage},
		{"too many requests", fmt.Errorf("client 192.0.2.1: %w", ErrTooManyRequests), http.StatusTooManyRequests},
		{"deadline", context.DeadlineExceeded, http.StatusServiceUnavailable},
		{"canceled", context.Canceled, 499},
		{"unclassified", errors.New("boom"), http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := HTTPStatus(tc.err); got != tc.want {
				t.Fatalf("HTTPStatus(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}
