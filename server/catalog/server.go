// Package catalog is catalogd's HTTP layer: the OCI Distribution API v2
// over a catalog.Registry, and the find extension (GET /v2/_find) that
// answers Find-ContainerImage for the whole catalog in one request.
//
// Handlers translate HTTP and nothing else: the rules live in the catalog
// package. Each handler returns an error, and one adapter (writeError)
// writes the OCI error envelope with the status of errdefs.HTTPStatus.
//
// Reads (GET, HEAD) are anonymous. Writes need HTTP Basic credentials from
// an htpasswd file of bcrypt hashes, unless the server runs with
// WithInsecureDev; WithReadOnly refuses every write. The ping (GET /v2/)
// challenges a client without credentials with 401 and a Bearer challenge
// whose token endpoint (GET /token) is catalogd's own, so that clients
// which send credentials only after a challenge can push and those
// without credentials can still pull (token.go); GET /healthz answers 200
// to anyone. Failed
// authentications are limited per client address (WithAuthFailureLimit),
// and the bcrypt comparisons run in a bounded number of slots, so that
// guessing passwords neither goes fast nor slows the reads down.
package catalog

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// Limits.
const (
	// DefaultMaxBlobSize caps a blob: one monolithic upload, or the sum of
	// the chunks of an upload session.
	DefaultMaxBlobSize = 64 << 30
	// maxPageSize caps the n of tags/list and _catalog; a larger n is
	// answered with a page of this size and a Link to the next one.
	maxPageSize = 10000
)

// Realm is the realm of the Basic challenge.
const Realm = "catalogd"

// Response headers.
const (
	headerAPIVersion    = "Docker-Distribution-API-Version"
	apiVersion          = "registry/2.0"
	headerContentDigest = "Docker-Content-Digest"
	headerUploadUUID    = "Docker-Upload-UUID"
	headerOCISubject    = "OCI-Subject"
	headerFilters       = "OCI-Filters-Applied"
)

// Opt sets an option of New.
type Opt func(*options)

type options struct {
	logger          *logrus.Logger
	htpasswd        *Htpasswd
	insecureDev     bool
	readOnly        bool
	maxManifestSize int64
	maxBlobSize     int64
	authFailures    int
	authFailWindow  time.Duration
	tokenRealm      string
	tokenTTL        time.Duration
}

// WithLogger sets the logger of the request log lines (default: logrus's
// standard logger).
func WithLogger(l *logrus.Logger) Opt { return func(o *options) { o.logger = l } }

// WithHtpasswd sets the users allowed to write.
func WithHtpasswd(h *Htpasswd) Opt { return func(o *options) { o.htpasswd = h } }

// WithInsecureDev lets anyone write, without credentials. For development
// only.
func WithInsecureDev(on bool) Opt { return func(o *options) { o.insecureDev = on } }

// WithReadOnly refuses every write with 403 DENIED, whatever the
// credentials.
func WithReadOnly(on bool) Opt { return func(o *options) { o.readOnly = on } }

// WithMaxManifestSize caps a manifest PUT body; n <= 0 keeps the
// registry's MaxManifestSize (catalog.DefaultMaxManifestSize unless the
// registry was given another), which is also the size the registry
// accepts.
func WithMaxManifestSize(n int64) Opt {
	return func(o *options) {
		if n > 0 {
			o.maxManifestSize = n
		}
	}
}

// WithAuthFailureLimit sets the limit on failed authentications: a client
// address that fails failures times within window is refused with 429
// TOOMANYREQUESTS for window, then twice as long at each further lock-out
// (see authLimiter). Values <= 0 keep DefaultAuthFailures and
// DefaultAuthFailWindow.
func WithAuthFailureLimit(failures int, window time.Duration) Opt {
	return func(o *options) {
		if failures > 0 {
			o.authFailures = failures
		}
		if window > 0 {
			o.authFailWindow = window
		}
	}
}

// WithTokenRealm sets the realm of the Bearer challenge: the URL of the
// token endpoint (GET /token) as clients reach it, e.g. behind a proxy
// that terminates TLS. Without it the realm is built from each request's
// scheme and Host. New refuses a realm that is not an absolute http or
// https URL.
func WithTokenRealm(realm string) Opt { return func(o *options) { o.tokenRealm = realm } }

// WithTokenTTL replaces DefaultTokenTTL; d <= 0 keeps it.
func WithTokenTTL(d time.Duration) Opt {
	return func(o *options) {
		if d > 0 {
			o.tokenTTL = d
		}
	}
}

// WithMaxBlobSize replaces DefaultMaxBlobSize; n <= 0 keeps it.
func WithMaxBlobSize(n int64) Opt {
	return func(o *options) {
		if n > 0 {
			o.maxBlobSize = n
		}
	}
}

// Server is catalogd's http.Handler. It is safe for concurrent use.
type Server struct {
	reg     *catalog.Registry
	opts    options
	router  *mux.Router
	handler http.Handler
	limiter *authLimiter
	tokens  *tokenIssuer
}

// New returns the server of reg. Writes need one of WithHtpasswd,
// WithInsecureDev or WithReadOnly (which refuses them): without any, New
// fails rather than start a server nobody can push to.
func New(reg *catalog.Registry, opts ...Opt) (*Server, error) {
	if reg == nil {
		return nil, fmt.Errorf("catalog server: nil registry: %w", errdefs.ErrInvalidArgument)
	}
	o := options{
		logger:          logrus.StandardLogger(),
		maxManifestSize: reg.MaxManifestSize(),
		maxBlobSize:     DefaultMaxBlobSize,
		authFailures:    DefaultAuthFailures,
		authFailWindow:  DefaultAuthFailWindow,
		tokenTTL:        DefaultTokenTTL,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.htpasswd == nil && !o.insecureDev && !o.readOnly {
		return nil, fmt.Errorf("catalog server: no credentials for writes: give an htpasswd file, insecure dev mode or read-only mode: %w",
			errdefs.ErrInvalidArgument)
	}
	if err := ValidateTokenRealm(o.tokenRealm); err != nil {
		return nil, err
	}
	tokens, err := newTokenIssuer(o.tokenTTL)
	if err != nil {
		return nil, err
	}
	s := &Server{
		reg:     reg,
		opts:    o,
		router:  newRouter(),
		limiter: newAuthLimiter(o.authFailures, o.authFailWindow, maxAuthClients),
		tokens:  tokens,
	}
	if err := s.attachHandlers(); err != nil {
		return nil, err
	}
	s.router.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, fmt.Errorf("no route for %s %s: %w", r.Method, r.URL.Path, errdefs.ErrNotFound))
	})
	s.router.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, fmt.Errorf("method %s on %s: %w", r.Method, r.URL.Path, errdefs.ErrNotImplemented))
	})
	s.handler = middleware.Logging(o.logger, middleware.Recover(s.writeError, http.HandlerFunc(s.serve)))
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// handlers is the handler of each method of each route, by route name.
func (s *Server) handlers() map[string]map[string]handlerFunc {
	return map[string]map[string]handlerFunc{
		RouteHealth:      {http.MethodGet: s.health, http.MethodHead: s.health},
		RouteToken:       {http.MethodGet: s.token, http.MethodPost: s.token},
		RouteBase:        {http.MethodGet: s.ping, http.MethodHead: s.ping},
		RouteCatalog:     {http.MethodGet: s.listRepositories, http.MethodHead: s.listRepositories},
		RouteFind:        {http.MethodGet: s.find, http.MethodHead: s.find},
		RouteFindChanges: {http.MethodGet: s.findChanges, http.MethodHead: s.findChanges},
		RouteManifest: {
			http.MethodGet:    s.getManifest,
			http.MethodHead:   s.getManifest,
			http.MethodPut:    s.putManifest,
			http.MethodDelete: s.deleteManifest,
		},
		RouteBlob: {
			http.MethodGet:    s.getBlob,
			http.MethodHead:   s.headBlob,
			http.MethodDelete: s.deleteBlob,
		},
		RouteBlobUpload: {http.MethodPost: s.startUpload},
		RouteUpload: {
			http.MethodGet:    s.getUpload,
			http.MethodHead:   s.getUpload,
			http.MethodPatch:  s.patchUpload,
			http.MethodPut:    s.putUpload,
			http.MethodDelete: s.cancelUpload,
		},
		RouteTags:      {http.MethodGet: s.listTags, http.MethodHead: s.listTags},
		RouteReferrers: {http.MethodGet: s.referrers, http.MethodHead: s.referrers},
	}
}

// attachHandlers attaches the handlers to the routes by name, and checks
// that each method of the route table has one.
func (s *Server) attachHandlers() error {
	all := s.handlers()
	for _, rt := range routes {
		byMethod, ok := all[rt.name]
		if !ok {
			return fmt.Errorf("route %s has no handlers", rt.name)
		}
		for _, m := range rt.methods {
			if byMethod[m] == nil {
				return fmt.Errorf("route %s: no handler for %s", rt.name, m)
			}
		}
		s.router.Get(rt.name).Handler(s.adapt(byMethod))
	}
	return nil
}

// serve runs every request: the API version header, the write gate, then
// the router.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(headerAPIVersion, apiVersion)
	if err := s.authorize(w, r); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.router.ServeHTTP(w, r)
}

// ping answers the version check of GET /v2/, after authorizePing.
func (s *Server) ping(w http.ResponseWriter, r *http.Request) error {
	if err := s.authorizePing(w, r); err != nil {
		return err
	}
	return writeJSON(w, r, http.StatusOK, "application/json", struct{}{})
}

// health answers GET /healthz with 200 to anyone, in every mode: the
// probe of scripts, benchmarks and load balancers, which the ping is not,
// since it challenges clients without credentials.
func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, r, http.StatusOK, "application/json", struct{}{})
}

// urlFor builds the path of route name, for Location and Link headers.
func (s *Server) urlFor(name string, pairs ...string) (string, error) {
	p, err := urlPath(s.router, name, pairs...)
	if err != nil {
		return "", fmt.Errorf("building the URL of route %s: %w", name, err)
	}
	return p, nil
}

// vars returns the route variables of r.
func vars(r *http.Request) map[string]string { return mux.Vars(r) }

// hasQuery reports whether the query of r has key, even empty.
func hasQuery(r *http.Request, key string) bool {
	_, ok := r.URL.Query()[key]
	return ok
}

// trimMediaType drops the parameters of a Content-Type.
func trimMediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.TrimSpace(mt)
}
