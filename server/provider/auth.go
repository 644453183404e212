package provider

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// bearerAuth checks the bearer token of a request.
//
// Both the expected token and the presented one are hashed with SHA-256
// before subtle.ConstantTimeCompare, so that the comparison takes the same
// time whatever the presented token's length and content: a plain
// ConstantTimeCompare returns at once when the lengths differ, which tells
// the length of the token.
type bearerAuth struct {
	sum [sha256.Size]byte
}

func newBearerAuth(token string) *bearerAuth {
	return &bearerAuth{sum: sha256.Sum256([]byte(token))}
}

// check returns nil when r carries `Authorization: Bearer <token>`, else
// an error of class Unauthenticated that does not say what was wrong
// beyond missing or invalid.
func (a *bearerAuth) check(r *http.Request) error {
	h := r.Header.Get("Authorization")
	if h == "" {
		return fmt.Errorf("this providerd needs a bearer token (Authorization: Bearer <token>): %w", errdefs.ErrUnauthenticated)
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
