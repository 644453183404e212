package catalog

import (
	"context"
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

// authorize lets reads through, refuses writes in read-only mode (403
// DENIED, whatever the credentials) and otherwise checks the Basic
// credentials of writes against the htpasswd file (401 UNAUTHORIZED with
// a Basic challenge), unless the server runs in insecure dev mode. A
// client locked out by the limiter gets 429 TOOMANYREQUESTS with
// Retry-After, before any check of its credentials. The ping has a rule
// of its own, authorizePing.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) error {
	if isRead(r) {
		return nil
	}
	if s.opts.readOnly {
		return fmt.Errorf("%s %s: catalogd runs in read-only mode: %w", r.Method, r.URL.Path, errdefs.ErrPermissionDenied)
	}
	if s.opts.insecureDev {
		return nil
	}
	return s.requireCredentials(w, r)
}

// authorizePing is the rule of the ping (GET and HEAD /v2/) when writes
// need credentials. A ping without credentials gets 401 UNAUTHORIZED with
// the Basic challenge: containers/image (skopeo, podman, buildah) and
// docker's registry client read the challenge of the ping and send
// credentials only after one, as they do with the distribution registry,
// Docker Hub or Harbor. A ping with credentials checks them, which is
// what docker login and skopeo login do. Every other read stays
// anonymous, so a client without credentials that reads on after the
// challenge (crane, skopeo, the docker CLI) still pulls. In read-only and
// insecure dev mode nobody needs to log in, and the ping answers 200.
func (s *Server) authorizePing(w http.ResponseWriter, r *http.Request) error {
	if s.opts.readOnly || s.opts.insecureDev {
		return nil
	}
	return s.requireCredentials(w, r)
}

// requireCredentials checks the Basic credentials of r: none gets 401
// with the challenge, and any others go through authenticate.
func (s *Server) requireCredentials(w http.ResponseWriter, r *http.Request) error {
	user, pass, ok := basicCredentials(r)
	if !ok {
		challenge(w)
		return fmt.Errorf("%s %s: authentication required: %w", r.Method, r.URL.Path, errdefs.ErrUnauthenticated)
	}
	if err := s.authenticate(w, r, user, pass); err != nil {
		return fmt.Errorf("%s %s: %w", r.Method, r.URL.Path, err)
	}
	middleware.AddFields(r.Context(), logrus.Fields{"user": user})
	return nil
}

// basicCredentials returns the Basic credentials of r. A header with an
// empty user and an empty password counts as none: containers/image sends
// one on every request after a Basic challenge when it has no
// credentials, and it is neither verified nor counted as a failure.
func basicCredentials(r *http.Request) (user, pass string, ok bool) {
	user, pass, ok = r.BasicAuth()
	if ok && user == "" && pass == "" {
		return "", "", false
	}
	return user, pass, ok
}

// challenge sets the Basic challenge of a 401.
func challenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`"`)
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
			challenge(w)
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
		challenge(w)
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
