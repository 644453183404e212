package docker

import (
	"net/http"

	"github.com/gorilla/mux"
)

// Route names. Handlers are attached to routes by these names. Each route
// answers under its unversioned path and under /v{version}/, as the route
// of versioned(name).
const (
	RoutePing             = "ping"              // GET, HEAD /_ping
	RouteVersion          = "version"           // GET /version
	RouteInfo             = "info"              // GET /info
	RouteImages           = "images"            // GET /images/json
	RouteImageSearch      = "image-search"      // GET /images/search
	RouteImageCreate      = "image-create"      // POST /images/create (docker pull)
	RouteImagesSave       = "images-save"       // GET /images/get?names= (docker save)
	RouteImageSave        = "image-save"        // GET /images/{name}/get
	RouteImagesLoad       = "images-load"       // POST /images/load (docker load)
	RouteImageInspect     = "image-inspect"     // GET /images/{name}/json
	RouteImageHistory     = "image-history"     // GET /images/{name}/history
	RouteImageTag         = "image-tag"         // POST /images/{name}/tag
	RouteImageDelete      = "image-delete"      // DELETE /images/{name}
	RouteContainerCreate  = "container-create"  // POST /containers/create
	RouteContainers       = "containers"        // GET /containers/json
	RouteContainerInspect = "container-inspect" // GET /containers/{id}/json
	RouteContainerArchive = "container-archive" // HEAD, PUT /containers/{id}/archive (docker cp)
	RouteContainerAttach  = "container-attach"  // POST /containers/{id}/attach (docker run)
	RouteContainerStart   = "container-start"   // POST /containers/{id}/start
	RouteContainerStop    = "container-stop"    // POST /containers/{id}/stop
	RouteContainerDelete  = "container-delete"  // DELETE /containers/{id}
	RouteCommit           = "commit"            // POST /commit
	versionedSuffix       = "@versioned"
	varVersion            = "version"
	varName               = "name"
	versionPathPattern    = "/v{" + varVersion + `:[0-9]+\.[0-9]+}`
)

// versioned is the name of the /v{version}/ twin of route name.
func versioned(name string) string { return name + versionedSuffix }

// route is one line of the route table.
type route struct {
	name    string
	path    string
	methods []string
}

// routes is the route table, in matching order. {name} is an image
// reference, which may hold slashes (microsoft/iis, docker.io/library/
// nanoserver:latest), so it matches across segments; the fixed paths under
// /images come first.
var routes = []route{
	{RoutePing, "/_ping", []string{http.MethodGet, http.MethodHead}},
	{RouteVersion, "/version", []string{http.MethodGet}},
	{RouteInfo, "/info", []string{http.MethodGet}},
	{RouteImages, "/images/json", []string{http.MethodGet}},
	{RouteImageSearch, "/images/search", []string{http.MethodGet}},
	{RouteImageCreate, "/images/create", []string{http.MethodPost}},
	{RouteImagesSave, "/images/get", []string{http.MethodGet}},
	{RouteImagesLoad, "/images/load", []string{http.MethodPost}},
	{RouteImageSave, "/images/{name:.+}/get", []string{http.MethodGet}},
	{RouteImageInspect, "/images/{name:.+}/json", []string{http.MethodGet}},
	{RouteImageHistory, "/images/{name:.+}/history", []string{http.MethodGet}},
	{RouteImageTag, "/images/{name:.+}/tag", []string{http.MethodPost}},
	{RouteImageDelete, "/images/{name:.+}", []string{http.MethodDelete}},
	{RouteContainerCreate, "/containers/create", []string{http.MethodPost}},
	{RouteContainers, "/containers/json", []string{http.MethodGet}},
	{RouteContainerInspect, "/containers/{id}/json", []string{http.MethodGet}},
	{RouteContainerArchive, "/containers/{id}/archive", []string{http.MethodHead, http.MethodPut}},
	{RouteContainerAttach, "/containers/{id}/attach", []string{http.MethodPost}},
	{RouteContainerStart, "/containers/{id}/start", []string{http.MethodPost}},
	{RouteContainerStop, "/containers/{id}/stop", []string{http.MethodPost}},
	{RouteContainerDelete, "/containers/{id}", []string{http.MethodDelete}},
	{RouteCommit, "/commit", []string{http.MethodPost}},
}

// newRouter builds the router of the route table, with no handlers yet:
// the server attaches them by route name.
func newRouter() *mux.Router {
	r := mux.NewRouter()
	for _, rt := range routes {
		r.Path(versionPathPattern + rt.path).Methods(rt.methods...).Name(versioned(rt.name))
		r.Path(rt.path).Methods(rt.methods...).Name(rt.name)
	}
	return r
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
