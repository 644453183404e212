package provider

import (
	"net/http"

	"github.com/gorilla/mux"
)

// Route names. Handlers are attached to routes by these names, and the
// Location headers are built from the same routes.
const (
	RouteHealth        = "health"         // GET /healthz
	RouteMetrics       = "metrics"        // GET /metrics
	RouteSources       = "sources"        // GET, POST /v1/sources
	RouteSource        = "source"         // DELETE /v1/sources/{name}
	RouteSourceRefresh = "source-refresh" // POST /v1/sources/{name}/refresh
	RouteFind          = "find"           // GET /v1/find
	RouteInstall       = "install"        // POST /v1/images/install
	RouteImages        = "images"         // GET, DELETE /v1/images
	RouteJobs          = "jobs"           // GET /v1/jobs
	RouteJob           = "job"            // GET /v1/jobs/{id}
	RouteJobEvents     = "job-events"     // GET /v1/jobs/{id}/events
	RouteJobCancel     = "job-cancel"     // POST /v1/jobs/{id}/cancel
	RouteSave          = "save"           // POST /v1/images/save
	RouteLoad          = "load"           // POST /v1/images/load
	RouteCommit        = "commit"         // POST /v1/images/commit

	RouteContainers       = "containers"        // GET, POST /v1/containers
	RouteContainer        = "container"         // GET, DELETE /v1/containers/{ref}
	RouteContainerStart   = "container-start"   // POST /v1/containers/{ref}/start
	RouteContainerStop    = "container-stop"    // POST /v1/containers/{ref}/stop
	RouteContainerArchive = "container-archive" // PUT /v1/containers/{ref}/archive
)

// The route variables.
const (
	varName = "name"
	varID   = "id"
	// varRef is a container's id, unique id prefix or name.
	varRef = "ref"
)

// route is one line of the route table.
type route struct {
	name    string
	path    string
	methods []string
}

// routes is the route table of API v1, in matching order. {name}, {id} and
// {ref} are single path segments that the provider validates, so that a bad
// one gets its InvalidArgument or NotFound in the envelope rather than a
// bare routing 404. /v1/images/install, save, load and commit come before
// anything else under /v1/images.
var routes = []route{
	{RouteHealth, "/healthz", []string{http.MethodGet}},
	{RouteMetrics, "/metrics", []string{http.MethodGet}},
	{RouteSources, "/v1/sources", []string{http.MethodGet, http.MethodPost}},
	{RouteSource, "/v1/sources/{name}", []string{http.MethodDelete}},
	{RouteSourceRefresh, "/v1/sources/{name}/refresh", []string{http.MethodPost}},
	{RouteFind, "/v1/find", []string{http.MethodGet}},
	{RouteInstall, "/v1/images/install", []string{http.MethodPost}},
	{RouteSave, "/v1/images/save", []string{http.MethodPost}},
	{RouteLoad, "/v1/images/load", []string{http.MethodPost}},
	{RouteCommit, "/v1/images/commit", []string{http.MethodPost}},
	{RouteImages, "/v1/images", []string{http.MethodGet, http.MethodDelete}},
	{RouteJobs, "/v1/jobs", []string{http.MethodGet}},
	{RouteJob, "/v1/jobs/{id}", []string{http.MethodGet}},
	{RouteJobEvents, "/v1/jobs/{id}/events", []string{http.MethodGet}},
	{RouteJobCancel, "/v1/jobs/{id}/cancel", []string{http.MethodPost}},
	{RouteContainers, "/v1/containers", []string{http.MethodGet, http.MethodPost}},
	{RouteContainer, "/v1/containers/{ref}", []string{http.MethodGet, http.MethodDelete}},
	{RouteContainerStart, "/v1/containers/{ref}/start", []string{http.MethodPost}},
	{RouteContainerStop, "/v1/containers/{ref}/stop", []string{http.MethodPost}},
	{RouteContainerArchive, "/v1/containers/{ref}/archive", []string{http.MethodPut}},
}

// newRouter builds the router of the route table, with no handlers yet:
// the server attaches them by route name.
func newRouter() *mux.Router {
	r := mux.NewRouter()
	for _, rt := range routes {
		r.Path(rt.path).Methods(rt.methods...).Name(rt.name)
	}
	return r
}

// urlPath builds the path of route name with its variables, given as
// key/value pairs.
func (s *Server) urlPath(name string, pairs ...string) (string, error) {
	u, err := s.router.Get(name).URLPath(pairs...)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// Route is a line of the route table, as Routes gives it.
type Route struct {
	Name    string
	Path    string
	Methods []string
}

// Routes is a copy of the route table, for clients and tests that walk
// every route.
func Routes() []Route {
	out := make([]Route, 0, len(routes))
	for _, rt := range routes {
		out = append(out, Route{Name: rt.name, Path: rt.path, Methods: append([]string(nil), rt.methods...)})
	}
	return out
}
