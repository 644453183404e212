package catalog

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// verifyWait bounds the wait of a request for a verification slot. A
// request that waited this long gets 503 UNAVAILABLE with Retry-After;
// the wait counts as no failure.
const verifyWait = 10 * time.Second

// errVerifyBusy is the cause of a wait for a slot that reached verifyWait.
var errVerifyBusy = fmt.Errorf("the server is busy verifying credentials: %w", errdefs.ErrUnavailable)

// isRead reports whether r only reads.
func isRead(r *http.Request) bool {
	return r.Method == http.MethodGet || r.Method == http.MethodHead
}

// authorize lets reads (and the token endpoint) through, refuses writes
// in read-only mode (403 DENIED, whatever the credentials) and otherwise
// needs a user's credentials (requireCredentials), unless the server runs
// in insecure dev mode. The ping has a rule of its own, authorizePing.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) error {
	if isRead(r) || r.URL.Path == tokenPath {
		return nil
	}
	if s.opts.readOnly {
		return fmt.Errorf("%s %s: catalogd runs in read-only mode: %w", r.Method, r.URL.Path, errdefs.ErrPermissionDenied)
	}
	if s.opts.insecureDev {
		return nil
	}
	return s.requireCredentials(w, r, false)
}

// authorizePing is the rule of the ping (GET and HEAD /v2/) when writes
// need credentials. A ping without credentials gets 401 UNAUTHORIZED with
// the Bearer challenge: docker's registry client and containers/image
// (skopeo, podman, buildah) read the challenge of the ping and send
// credentials only after one, as with Docker Hub, Harbor or the
// distribution registry. A ping with a token of ours (a user's or an
// anonymous one) or with a user's Basic credentials answers 200: that is
// how docker login and skopeo login check a login. Every other read stays
// anonymous, so a client without credentials that reads on after the
// challenge (crane, skopeo, the docker CLI, with an anonymous token) still
// pulls. In read-only and insecure dev mode nobody needs to log in, and
// the ping answers 200.
func (s *Server) authorizePing(w http.ResponseWriter, r *http.Request) error {
	if s.opts.readOnly || s.opts.insecureDev {
		return nil
	}
	return s.requireCredentials(w, r, true)
}

// requireCredentials checks the credentials of r: a bearer token of ours
// (a user's one, or any when anonymous is true) or a user's Basic
// credentials, through authenticate. None, a refused token or an
// anonymous one where a user is needed get 401 UNAUTHORIZED with the
// challenge.
func (s *Server) requireCredentials(w http.ResponseWriter, r *http.Request, anonymous bool) error {
	if tok, ok := bearerToken(r); ok {
		user, err := s.tokenUser(r, tok)
		if err != nil {
			s.challenge(w, r, "invalid_token")
			return fmt.Errorf("%s %s: %w", r.Method, r.URL.Path, err)
		}
		if user == "" && !anonymous {
			s.challenge(w, r, "insufficient_scope")
			return fmt.Errorf("%s %s: an anonymous token cannot write: fetch one with credentials from %s: %w",
				r.Method, r.URL.Path, tokenPath, errdefs.ErrUnauthenticated)
		}
		if user != "" {
			middleware.AddFields(r.Context(), logrus.Fields{"user": user})
		}
		return nil
	}
	user, pass, ok := basicCredentials(r)
	if !ok {
		s.challenge(w, r, "")
		return fmt.Errorf("%s %s: authentication required: %w", r.Method, r.URL.Path, errdefs.ErrUnauthenticated)
	}
	if err := s.authenticate(w, r, user, pass); err != nil {
		return fmt.Errorf("%s %s: %w", r.Method, r.URL.Path, err)
	}
	middleware.AddFields(r.Context(), logrus.Fields{"user": user})
	return nil
}

// tokenUser returns the user of tok, "" for an anonymous token. A user's
// token stands while the user's htpasswd entry is the one it was issued
// for: a new password or the user's removal ends it.
func (s *Server) tokenUser(r *http.Request, tok string) (string, error) {
	c, err := s.tokens.verify(tok)
	if err != nil || c.Sub == "" {
		return "", err
	}
	if s.opts.htpasswd != nil {
		if fp, ok := s.opts.htpasswd.fingerprint(r.Context(), c.Sub); ok && hex.EncodeToString(fp[:]) == c.FP {
			return c.Sub, nil
		}
	}
	return "", fmt.Errorf("the token of user %q was issued before its password changed or the user was removed: %w",
		c.Sub, errdefs.ErrUnauthenticated)
}

// basicCredentials returns the Basic credentials of r. A header with an
// empty user and an empty password counts as none: clients send one when
// they follow a Basic challenge without credentials (containers/image,
// the conformance suite at the token endpoint), and it is neither verified
// nor counted as a failure.
func basicCredentials(r *http.Request) (user, pass string, ok bool) {
	user, pass, ok = r.BasicAuth()
	if ok && user == "" && pass == "" {
		return "", "", false
	}
	return user, pass, ok
}

// challenge sets the challenge of a 401 from r: Basic at the token
// endpoint, which takes Basic credentials, and the Bearer challenge of
// the token endpoint everywhere else, with tokenErr ("invalid_token",
// "insufficient_scope") when a token was refused.
func (s *Server) challenge(w http.ResponseWriter, r *http.Request, tokenErr string) {
	if r.URL.Path == tokenPath {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`"`)
		return
	}
	w.Header().Set("WWW-Authenticate", s.bearerChallenge(r, tokenErr))
}

// authenticate checks user and pass, sent by the client of r, through the
// limiter: a locked-out client is refused first; a pair verified recently
// passes without bcrypt; any other takes a reservation of the limiter,
// then a verification slot of the htpasswd file. It sets the response
// headers of its refusals.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, user, pass string) error {
	ctx := r.Context()
	client := clientKey(r.RemoteAddr)
	if wait, ok := s.limiter.allowed(client); !ok {
		return s.tooManyFailures(w, r, client, wait)
	}
	a, cached := s.opts.htpasswd.lookup(ctx, user, pass)
	if cached {
		s.limiter.succeeded(client)
		return nil
	}
	// The concurrent first requests of one push (parallel uploads) carry
	// the same credentials: they wait for one verification rather than
	// each taking a reservation, which would lock a correct client out.
	f, leader := s.opts.htpasswd.join(a.mac)
	if !leader {
		select {
		case <-f.done:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the verification of the same credentials: %w", context.Cause(ctx))
		}
		switch {
		case f.err == nil:
			s.limiter.succeeded(client)
			return nil
		case errdefs.IsUnauthenticated(f.err):
			s.challenge(w, r, "")
			return f.err
		}
		// The leader was refused for reasons of its own (its client's
		// limit, its context, a busy server): this request verifies
		// for itself, under its own client's limit.
		return s.verifyCredentials(ctx, w, r, client, a, user)
	}
	err := s.verifyCredentials(ctx, w, r, client, a, user)
	s.opts.htpasswd.land(a.mac, f, err)
	return err
}

// verifyCredentials verifies a for the client of r with bcrypt, under a
// reservation of the client's failure limit.
func (s *Server) verifyCredentials(ctx context.Context, w http.ResponseWriter, r *http.Request, client netip.Prefix, a attempt, user string) error {
	if wait, ok := s.limiter.reserve(client); !ok {
		return s.tooManyFailures(w, r, client, wait)
	}
	vctx, cancel := context.WithTimeoutCause(ctx, verifyWait, errVerifyBusy)
	err := s.opts.htpasswd.verify(vctx, a)
	cancel()
	outcome := verifySucceeded
	switch {
	case errdefs.IsUnauthenticated(err):
		outcome = verifyFailed
	case err != nil:
		outcome = verifyAbandoned
	}
	ev := s.limiter.release(client, outcome)
	switch {
	case err == nil:
		return nil
	case outcome == verifyFailed:
		middleware.AddFields(ctx, logrus.Fields{"client": clientName(client)})
		s.logFailure(ctx, client, user, ev)
		s.challenge(w, r, "")
	case errdefs.IsUnavailable(err):
		w.Header().Set("Retry-After", "1")
	}
	return err
}

// tooManyFailures is the refusal of a locked-out client: 429 with
// Retry-After in whole seconds, at least 1.
func (s *Server) tooManyFailures(w http.ResponseWriter, r *http.Request, client netip.Prefix, wait time.Duration) error {
	secs := max(1, int64((wait+time.Second-1)/time.Second))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	middleware.AddFields(r.Context(), logrus.Fields{"client": clientName(client)})
	return fmt.Errorf("too many failed authentications from %s: retry in %d s: %w", clientName(client), secs, errdefs.ErrTooManyRequests)
}

// logFailure writes the log line of a failed authentication, when the
// limiter grants one: the first failure of a client in a window, and each
// lock-out.
func (s *Server) logFailure(ctx context.Context, client netip.Prefix, user string, ev authEvent) {
	if !ev.log {
		return
	}
	fields := logrus.Fields{"client": clientName(client), "user": user, "failures": ev.failures}
	if ev.unlogged > 0 {
		fields["unlogged_attempts"] = ev.unlogged
	}
	if ev.suppressed > 0 {
		fields["suppressed_lines"] = ev.suppressed
	}
	entry := middleware.Log(ctx).WithFields(fields)
	if ev.lockout > 0 {
		entry.WithField("lockout", ev.lockout.String()).
			Warn("too many failed authentications: refusing this client's credentials for the lock-out")
		return
	}
	entry.WithField("window", s.limiter.window.String()).
		Warn("failed authentication; further failures of this client in the window are only counted")
}
