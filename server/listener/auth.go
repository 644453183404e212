package listener

import (
	"fmt"
	"net/http"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// Policy says which requests carry a credential. It is safe for concurrent
// use.
type Policy struct {
	bearer  *middleware.BearerAuth
	missing string
	open    bool
}

// TokenPolicy is the policy of providerd: a request that came on a unix
// socket or a named pipe carries its credential; any other request must
// carry `Authorization: Bearer <token>`. With an empty token, only the
// socket and the pipe are accepted. missing is the message of a request
// without an Authorization header: it says how to send one.
func TokenPolicy(token, missing string) *Policy {
	p := &Policy{missing: missing}
	if token != "" {
		p.bearer = middleware.NewBearerAuth(token, missing)
	}
	return p
}

// Open accepts every request. It is for tests of the handlers, which are
// served by httptest rather than by this package.
func Open() *Policy { return &Policy{open: true} }

// Check returns nil when r carries a credential, else an error of class
// Unauthenticated that says what is missing and no more.
func (p *Policy) Check(r *http.Request) error {
	if p.open {
		return nil
	}
	if t, ok := TransportOf(r.Context()); ok && (t == TransportUnix || t == TransportPipe) {
		return nil
	}
	if p.bearer == nil {
		return fmt.Errorf("this providerd takes requests on its unix socket only: %w", errdefs.ErrUnauthenticated)
	}
	return p.bearer.Check(r)
}
