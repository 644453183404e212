package provider

import (
	"net/http"

	"github.com/gorilla/mux"
)

// Route names. Handlers are attached to routes by these names, and the
// Location headers are built from the same routes.
const (
	RouteHealth    = "health"     // GET /healthz
	RouteMetrics   = "metrics"    // GET /metrics
	RouteSources   = "sources"    // GET, POST /v1/sources
	RouteSource    = "source"     // DELETE /v1/sources/{name}
	RouteFind      = "find"       // GET /v1/find
	RouteInstall   = "install"    // POST /v1/images/install
	RouteImages    = "images"     // GET, DELETE /v1/images
	RouteJobs      = "jobs"       // GET /v1/jobs
	RouteJob       = "job"        // GET /v1/jobs/{id}
	RouteJobEvents = "job-events" // GET /v1/jobs/{id}/events
	RouteJobCancel = "job-cancel" // POST /v1/jobs/{id}/cancel
)

// The route variables.
const (
	varName = "name"
	varID   = "id"
)

// route is one line of the route table.
type route struct {
	name    string
	path    string
	methods []string
}

// routes is the route table of API v1, in matching order. {name} and {id}
// are single path segments that the provider validates, so that a bad one
// gets its InvalidArgument or NotFound in the envelope rather than a bare
// routing 404. /v1/images/install comes before anything else under
// /v1/images.
var routes = []route{
	{RouteHealth, "/healthz", []string{http.MethodGet}},
	{RouteMetrics, "/metrics", []string{http.MethodGet}},
	{RouteSources, "/v1/sources", []string{http.MethodGet, http.MethodPost}},
	{RouteSource, "/v1/sources/{name}", []string{http.MethodDelete}},
	{RouteFind, "/v1/find", []string{http.MethodGet}},
	{RouteInstall, "/v1/images/install", []string{http.MethodPost}},
	{RouteImages, "/v1/images", []string{http.MethodGet, http.MethodDelete}},
	{RouteJobs, "/v1/jobs", []string{http.MethodGet}},
	{RouteJob, "/v1/jobs/{id}", []string{http.MethodGet}},
	{RouteJobEvents, "/v1/jobs/{id}/events", []string{http.MethodGet}},
	{RouteJobCancel, "/v1/jobs/{id}/cancel", []string{http.MethodPost}},
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
