// Package docker is a subset of the Docker Engine API (v1.51) over the
// provider, so that the real docker CLI can list, pull, inspect, search,
// tag, remove, save and load the images providerd manages, create,
// inspect, list, start, stop and remove its containers (state only: no
// process runs), copy files into them, and commit a container into a new
// image.
//
// It holds no rules of its own: every handler translates a Docker request
// into calls of a Backend, which *provider.Provider implements, and the
// answer into the JSON of moby's api/swagger.yaml. Each handler returns an
// error, and one adapter (writeError) writes Docker's {"message": "..."}
// with the status of errdefs.HTTPStatus. Requests outside the subset get
// 501 and "<METHOD> <path> is not supported by providerd", never a bare
// 404 that the CLI would read as "no such image".
//
// Every route answers under the unversioned path and under /v{version}/.
// Every request, /_ping included, needs a credential (see package
// listener): it came on the unix socket (DOCKER_HOST=unix://…), or it
// carries `Authorization: Bearer <token>`, which the docker CLI sends
// through the HttpHeaders of its config.json.
package docker

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"sync"

	"github.com/gorilla/mux"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider"
	"github.com/containerprovider/containerprovider/server/listener"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// missingToken is the message of a request without a credential.
const missingToken = `this providerd needs a bearer token: add "HttpHeaders": {"Authorization": "Bearer <token>"} to the docker config.json`

// APIVersion is the Docker Engine API version the server advertises.
const APIVersion = "1.51"

// MinAPIVersion is the oldest API version it accepts in a versioned path.
const MinAPIVersion = "1.24"

// Backend is what the server needs of the engine: the methods of
// *provider.Provider that the Docker API calls, so that handler tests can
// run against a fake.
type Backend interface {
	Find(ctx context.Context, opts provider.FindOptions) (api.FindResponse, error)
	Install(ctx context.Context, req api.InstallRequest) (api.Job, error)
	Watch(ctx context.Context, id string) (<-chan api.JobEvent, error)
	Images(ctx context.Context, opts provider.GetOptions) ([]api.Image, error)
	Remove(ctx context.Context, opts provider.RemoveOptions) (api.RemoveResult, error)
	Containers(ctx context.Context) ([]api.Container, error)
	Container(ctx context.Context, ref string) (api.Container, error)
	Tag(ctx context.Context, image, repo, tag string) error
	Untag(ctx context.Context, repo, tag string) (removed bool, err error)
	ImageConfig(ctx context.Context, ref string) (ocispec.Image, error)
	CreateContainer(ctx context.Context, req api.ContainerCreateRequest) (api.Container, error)
	StartContainer(ctx context.Context, ref string) (api.Container, error)
	StopContainer(ctx context.Context, ref string) (api.Container, error)
	RemoveContainer(ctx context.Context, ref string, force bool) error
	StatContainerPath(ctx context.Context, ref, path string) (fs.FileInfo, error)
	CopyToContainer(ctx context.Context, ref, dest string, r io.Reader) error
	UntagUsedImage(ctx context.Context, image string) ([]string, error)
	RestoreImageRefs(ctx context.Context, image string) ([]string, error)
	Commit(ctx context.Context, req api.CommitRequest) (api.Image, error)
	Save(ctx context.Context, req api.SaveRequest, w io.Writer) (api.Image, error)
	Load(ctx context.Context, r io.Reader) (api.LoadResult, error)
}

var _ Backend = (*provider.Provider)(nil)

// Opt sets an option of New.
type Opt func(*options)

type options struct {
	logger  *logrus.Logger
	policy  *listener.Policy
	version string
	root    string
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

// WithVersion sets the server version that /version and /info report.
func WithVersion(v string) Opt { return func(o *options) { o.version = v } }

// WithRoot sets the directory /info reports as DockerRootDir: the
// provider's root.
func WithRoot(dir string) Opt { return func(o *options) { o.root = dir } }

// Server is the Docker Engine API handler. It is safe for concurrent use.
type Server struct {
	backend Backend
	opts    options
	router  *mux.Router
	handler http.Handler
	fresh   freshContainers

	// streams is canceled by StopStreams: every pull stream ends with it.
	streams    context.Context
	stopOnce   sync.Once
	stopStream context.CancelFunc
}

// New returns the server of backend.
func New(backend Backend, opts ...Opt) (*Server, error) {
	if backend == nil {
		return nil, fmt.Errorf("docker server: nil backend: %w", errdefs.ErrInvalidArgument)
	}
	o := options{logger: logrus.StandardLogger(), version: "dev", policy: listener.TokenPolicy("", missingToken)}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{backend: backend, opts: o, router: newRouter()}
	s.streams, s.stopStream = context.WithCancel(context.Background())
	if err := s.attachHandlers(); err != nil {
		return nil, err
	}
	unsupported := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errUnsupported(r))
	})
	s.router.NotFoundHandler = unsupported
	s.router.MethodNotAllowedHandler = unsupported
	s.handler = middleware.Logging(o.logger, middleware.Recover(s.writeError, http.HandlerFunc(s.serve)))
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// StopStreams ends every pull stream, now and later; the install jobs go
// on. A graceful shutdown calls it first (http.Server.RegisterOnShutdown).
func (s *Server) StopStreams() { s.stopOnce.Do(s.stopStream) }

// serve runs every request: the token check, then the router.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if err := s.opts.policy.Check(r); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="providerd"`)
		s.writeError(w, r, err)
		return
	}
	s.router.ServeHTTP(w, r)
}
