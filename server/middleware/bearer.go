package middleware

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// BearerAuth checks the bearer token of requests. It is safe for
// concurrent use.
//
// Both the expected token and the presented one are hashed with SHA-256
// before subtle.ConstantTimeCompare, so that the comparison takes the same
// time whatever the presented token's length and content: a plain
// ConstantTimeCompare returns at once when the lengths differ, which tells
// the length of the token.
type BearerAuth struct {
	sum     [sha256.Size]byte
	missing string
}

// NewBearerAuth checks requests against token. missing is the message of a
// request that carries no Authorization header: it says how to send one.
func NewBearerAuth(token, missing string) *BearerAuth {
	return &BearerAuth{sum: sha256.Sum256([]byte(token)), missing: missing}
}

// Check returns nil when r carries `Authorization: Bearer <token>`, else an
// error of class Unauthenticated that says no more than missing or invalid.
func (a *BearerAuth) Check(r *http.Request) error {
	h := r.Header.Get("Authorization")
	if h == "" {
		return fmt.Errorf("%s: %w", a.missing, errdefs.ErrUnauthenticated)
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return fmt.Errorf("authorization scheme: want Bearer: %w", errdefs.ErrUnauthenticated)
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if subtle.ConstantTimeCompare(got[:], a.sum[:]) != 1 {
		return fmt.Errorf("invalid bearer token: %w", errdefs.ErrUnauthenticated)
	}
	return nil
}
