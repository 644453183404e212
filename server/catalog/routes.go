package catalog

import (
	"net/http"

	"github.com/gorilla/mux"
)

// Route names. Handlers are attached to routes by these names, and the
// Location and Link headers are built from the same routes.
const (
	RouteHealth      = "health"       // GET /healthz
	RouteToken       = "token"        // GET, POST /token
	RouteBase        = "base"         // GET /v2/
	RouteCatalog     = "catalog"      // GET /v2/_catalog
	RouteFind        = "find"         // GET /v2/_find
	RouteFindChanges = "find-changes" // GET /v2/_find/changes
	RouteManifest    = "manifest"     // /v2/<name>/manifests/<reference>
	RouteBlob        = "blob"         // /v2/<name>/blobs/<digest>
	RouteBlobUpload  = "blob-upload"  // POST /v2/<name>/blobs/uploads/
	RouteUpload      = "upload"       // /v2/<name>/blobs/uploads/<uuid>
	RouteTags        = "tags"         // GET /v2/<name>/tags/list
	RouteReferrers   = "referrers"    // GET /v2/<name>/referrers/<digest>
)

// route is one line of the route table.
type route struct {
	name    string
	path    string
	methods []string
}

// The route variables.
const (
	varName      = "name"
	varReference = "reference"
	varDigest    = "digest"
	varUUID      = "uuid"
)

// routes is the route table of catalogd, in matching order.
//
// {name} is deliberately permissive (.+, anchored by the fixed segments
// after it), so that an invalid repository name reaches its handler and gets
// NAME_INVALID (400) rather than a bare 404. {reference}, {digest} and
// {uuid} are single path segments that the handlers validate: a digest may
// be sha256 or sha512. Upload routes come before blob routes; the fixed
// segments keep them apart anyway, since a {digest} cannot hold a slash.
var routes = []route{
	{RouteHealth, "/healthz", []string{http.MethodGet, http.MethodHead}},
	{RouteToken, tokenPath, []string{http.MethodGet, http.MethodPost}},
	{RouteBase, "/v2/", []string{http.MethodGet, http.MethodHead}},
	{RouteCatalog, "/v2/_catalog", []string{http.MethodGet, http.MethodHead}},
	{RouteFind, "/v2/_find", []string{http.MethodGet, http.MethodHead}},
	{RouteFindChanges, "/v2/_find/changes", []string{http.MethodGet, http.MethodHead}},
	{RouteBlobUpload, "/v2/{name:.+}/blobs/uploads/", []string{http.MethodPost}},
	{RouteUpload, "/v2/{name:.+}/blobs/uploads/{uuid}", []string{http.MethodGet, http.MethodHead, http.MethodPatch, http.MethodPut, http.MethodDelete}},
	{RouteBlob, "/v2/{name:.+}/blobs/{digest}", []string{http.MethodGet, http.MethodHead, http.MethodDelete}},
	{RouteManifest, "/v2/{name:.+}/manifests/{reference}", []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete}},
	{RouteTags, "/v2/{name:.+}/tags/list", []string{http.MethodGet, http.MethodHead}},
	{RouteReferrers, "/v2/{name:.+}/referrers/{digest}", []string{http.MethodGet, http.MethodHead}},
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
// key/value pairs. The route table is fixed, so a failure is a programming
// error in the caller's variables.
func urlPath(r *mux.Router, name string, pairs ...string) (string, error) {
	u, err := r.Get(name).URLPath(pairs...)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}
