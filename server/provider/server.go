// Package provider is providerd's HTTP layer: API v1 over a Backend, which
// *provider.Provider implements.
//
// Handlers translate HTTP and nothing else: the rules live in the provider
// package. Each handler returns an error, and one adapter (writeError)
// writes the v1 envelope {"error":{"code","message","dependents"}} with the
// status of errdefs.HTTPStatus.
//
// Every request, /healthz and /metrics included, needs a credential (see
// package listener): it came on the unix socket, or it carries the bearer
// token, compared in constant time. Without one it gets 401 and reaches no
// handler.
package provider

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider"
	"github.com/containerprovider/containerprovider/provider/hostfs"
	"github.com/containerprovider/containerprovider/server/listener"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// MaxBodySize caps every JSON request body.
const MaxBodySize = 64 << 10

// MaxArchiveSize is the default cap of the tar bodies: an image archive for
// POST /v1/images/load and the files of PUT /v1/containers/{ref}/archive
// (see WithMaxArchiveSize).
const MaxArchiveSize = 64 << 30

// Realm is the realm of the Bearer challenge.
const Realm = "providerd"

// missingToken is the message of a request without a credential.
const missingToken = "this providerd needs a bearer token (Authorization: Bearer <token>)"

// Backend is what the server needs of the engine: the methods of
// *provider.Provider that API v1 calls, so that handler tests can run
// against a fake.
type Backend interface {
	Sources(ctx context.Context) ([]api.Source, error)
	AddSource(ctx context.Context, s api.Source) (api.Source, error)
	RemoveSource(ctx context.Context, name string) error
	RefreshSource(ctx context.Context, name string) (api.Source, error)
	Find(ctx context.Context, opts provider.FindOptions) (api.FindResponse, error)
	Install(ctx context.Context, req api.InstallRequest) (api.Job, error)
	Jobs(ctx context.Context) ([]api.Job, error)
	Job(ctx context.Context, id string) (api.Job, error)
	Watch(ctx context.Context, id string) (<-chan api.JobEvent, error)
	Cancel(ctx context.Context, id string) (api.Job, error)
	Images(ctx context.Context, opts provider.GetOptions) ([]api.Image, error)
	ImagesPage(ctx context.Context, after string, n int) (provider.ImagePage, error)
	Remove(ctx context.Context, opts provider.RemoveOptions) (api.RemoveResult, error)
	WriteMetrics(w io.Writer) error

	Save(ctx context.Context, req api.SaveRequest, w io.Writer) (api.Image, error)
	SaveToPath(ctx context.Context, req api.SaveRequest, fsys hostfs.FS) (api.SaveResult, error)
	PlanSave(ctx context.Context, req api.SaveRequest) (api.SaveResult, error)
	LoadFile(ctx context.Context, f *os.File, label string) (api.LoadResult, error)
	Load(ctx context.Context, r io.Reader) (api.LoadResult, error)
	Commit(ctx context.Context, req api.CommitRequest) (api.Image, error)

	CreateContainer(ctx context.Context, req api.ContainerCreateRequest) (api.Container, error)
	Containers(ctx context.Context) ([]api.Container, error)
	Container(ctx context.Context, ref string) (api.Container, error)
	StartContainer(ctx context.Context, ref string) (api.Container, error)
	StopContainer(ctx context.Context, ref string) (api.Container, error)
	CopyToContainer(ctx context.Context, ref, dest string, r io.Reader) error
	RemoveContainer(ctx context.Context, ref string, force bool) error
}

var _ Backend = (*provider.Provider)(nil)

// Opt sets an option of New.
type Opt func(*options)

type options struct {
	logger     *logrus.Logger
	policy     *listener.Policy
	version    string
	maxArchive int64
	hostFS     func(*http.Request) (hostfs.FS, error)
}

// WithLogger sets the logger of the request log lines (default: logrus's
// standard logger).
func WithLogger(l *logrus.Logger) Opt { return func(o *options) { o.logger = l } }

// WithToken is WithPolicy(listener.TokenPolicy(token, ...)): requests on
// the unix socket carry their credential, every other one needs
// `Authorization: Bearer <token>`.
func WithToken(token string) Opt {
	return func(o *options) { o.policy = listener.TokenPolicy(token, missingToken) }
}

// WithPolicy sets who may call the API. The default, without WithPolicy or
// WithToken, accepts the requests of the unix socket only.
func WithPolicy(p *listener.Policy) Opt { return func(o *options) { o.policy = p } }

// WithMaxArchiveSize replaces MaxArchiveSize as the cap of the tar bodies
// (n > 0).
func WithMaxArchiveSize(n int64) Opt {
	return func(o *options) {
		if n > 0 {
			o.maxArchive = n
		}
	}
}

// WithHostFS replaces callerFS, which gives the file system of the caller
// of the unix socket, as the source of the file system that save and load
// use for paths on the daemon's host. It is for tests, which are not served
// on a unix socket.
func WithHostFS(fn func(*http.Request) (hostfs.FS, error)) Opt {
	return func(o *options) { o.hostFS = fn }
}

// WithVersion sets the version that /healthz reports.
func WithVersion(v string) Opt { return func(o *options) { o.version = v } }

// Server is providerd's http.Handler. It is safe for concurrent use.
type Server struct {
	backend Backend
	opts    options
	router  *mux.Router
	handler http.Handler

	// streams is canceled by StopStreams: every event stream ends with it.
	streams    context.Context
	stopOnce   sync.Once
	stopStream context.CancelFunc
}

// New returns the server of backend.
func New(backend Backend, opts ...Opt) (*Server, error) {
	if backend == nil {
		return nil, fmt.Errorf("provider server: nil backend: %w", errdefs.ErrInvalidArgument)
	}
	o := options{logger: logrus.StandardLogger(), maxArchive: MaxArchiveSize, policy: listener.TokenPolicy("", missingToken), hostFS: callerFS}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{backend: backend, opts: o, router: newRouter()}
	s.streams, s.stopStream = context.WithCancel(context.Background())
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

// StopStreams ends every event stream, now and later, without a result
// event; the jobs go on, and clients re-attach with GET
// /v1/jobs/{id}/events. A graceful shutdown calls it first (for instance
// through http.Server.RegisterOnShutdown), so that the streams, which may
// last as long as a job, do not hold the shutdown up.
func (s *Server) StopStreams() { s.stopOnce.Do(s.stopStream) }

// handlers is the handler of each method of each route, by route name.
func (s *Server) handlers() map[string]map[string]handlerFunc {
	return map[string]map[string]handlerFunc{
		RouteHealth:        {http.MethodGet: s.health},
		RouteMetrics:       {http.MethodGet: s.metrics},
		RouteSources:       {http.MethodGet: s.listSources, http.MethodPost: s.addSource},
		RouteSource:        {http.MethodDelete: s.removeSource},
		RouteSourceRefresh: {http.MethodPost: s.refreshSource},
		RouteFind:          {http.MethodGet: s.find},
		RouteInstall:       {http.MethodPost: s.install},
		RouteImages:        {http.MethodGet: s.listImages, http.MethodDelete: s.removeImages},
		RouteJobs:          {http.MethodGet: s.listJobs},
		RouteJob:           {http.MethodGet: s.getJob},
		RouteJobEvents:     {http.MethodGet: s.jobEvents},
		RouteJobCancel:     {http.MethodPost: s.cancelJob},
		RouteSave:          {http.MethodPost: s.save},
		RouteLoad:          {http.MethodPost: s.load},
		RouteCommit:        {http.MethodPost: s.commit},

		RouteContainers:       {http.MethodGet: s.listContainers, http.MethodPost: s.createContainer},
		RouteContainer:        {http.MethodGet: s.getContainer, http.MethodDelete: s.removeContainer},
		RouteContainerStart:   {http.MethodPost: s.startContainer},
		RouteContainerStop:    {http.MethodPost: s.stopContainer},
		RouteContainerArchive: {http.MethodPut: s.copyToContainer},
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

// serve runs every request: the token check, then the router.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if err := s.opts.policy.Check(r); err != nil {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf("Bearer realm=%q", Realm))
		s.writeError(w, r, err)
		return
	}
	s.router.ServeHTTP(w, r)
}
