package catalog

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/gorilla/mux"
)

// TestRouteTable walks the router: every route is in the table under its
// name, has a handler for each of its methods, and builds URLs that route
// back to itself with the same variables.
func TestRouteTable(t *testing.T) {
	e := newTestEnv(t)
	s := e.srv.Config.Handler.(*Server)

	sample := map[string][]string{
		varName:      {"library/nano-server"},
		varReference: {"10.0.14393.0"},
		varDigest:    {"sha256:" + "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"},
		varUUID:      {"0123456789abcdef0123456789abcdef"},
	}
	handlers := s.handlers()
	seen := map[string]bool{}
	err := s.router.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		name := rt.GetName()
		i := slices.IndexFunc(routes, func(r route) bool { return r.name == name })
		if i < 0 {
			t.Errorf("route %q is not in the table", name)
			return nil
		}
		seen[name] = true
		tmpl, _ := rt.GetPathTemplate()
		if tmpl != routes[i].path {
			t.Errorf("route %s: template %q, table %q", name, tmpl, routes[i].path)
		}
		methods, _ := rt.GetMethods()
		if !slices.Equal(methods, routes[i].methods) {
			t.Errorf("route %s: methods %v, table %v", name, methods, routes[i].methods)
		}
		for _, m := range methods {
			if handlers[name][m] == nil {
				t.Errorf("route %s: no handler for %s", name, m)
			}
		}
		if rt.GetHandler() == nil {
			t.Errorf("route %s: no handler attached", name)
		}
		// Build the URL from the route and route it back.
		var pairs []string
		vars, _ := rt.GetVarNames()
		for _, v := range vars {
			pairs = append(pairs, v, sample[v][0])
		}
		u, err := rt.URLPath(pairs...)
		if err != nil {
			t.Errorf("route %s: URLPath: %v", name, err)
			return nil
		}
		for _, m := range methods {
			var match mux.RouteMatch
			if !s.router.Match(httptest.NewRequest(m, u.String(), nil), &match) || match.Route.GetName() != name {
				t.Errorf("route %s: %s %s does not route back", name, m, u)
				continue
			}
			for _, v := range vars {
				if match.Vars[v] != sample[v][0] {
					t.Errorf("route %s: variable %s = %q, want %q", name, v, match.Vars[v], sample[v][0])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if !seen[r.name] {
			t.Errorf("table route %s is not in the router", r.name)
		}
	}
}

// TestRouteMatching checks which route paths reach, including names that
// are invalid and must reach their handler to get NAME_INVALID.
func TestRouteMatching(t *testing.T) {
	e := newTestEnv(t)
	s := e.srv.Config.Handler.(*Server)
	for _, tc := range []struct {
		name, method, path string
		route              string
		vars               map[string]string
	}{
		{"health", "GET", "/healthz", RouteHealth, nil},
		{"token", "GET", "/token", RouteToken, nil},
		{"token, password grant", "POST", "/token", RouteToken, nil},
		{"ping", "GET", "/v2/", RouteBase, nil},
		{"catalog", "GET", "/v2/_catalog", RouteCatalog, nil},
		{"find", "GET", "/v2/_find", RouteFind, nil},
		{"nested name", "GET", "/v2/a/b/c/manifests/latest", RouteManifest, map[string]string{varName: "a/b/c", varReference: "latest"}},
		{"invalid name still routed", "GET", "/v2/Not_Valid!/manifests/latest", RouteManifest, map[string]string{varName: "Not_Valid!"}},
		{"uploads post", "POST", "/v2/a/blobs/uploads/", RouteBlobUpload, map[string]string{varName: "a"}},
		{"upload", "PATCH", "/v2/a/b/blobs/uploads/xyz", RouteUpload, map[string]string{varName: "a/b", varUUID: "xyz"}},
		{"blob", "GET", "/v2/a/blobs/sha512:abc", RouteBlob, map[string]string{varName: "a", varDigest: "sha512:abc"}},
		{"tags", "GET", "/v2/a/tags/list", RouteTags, map[string]string{varName: "a"}},
		{"referrers", "GET", "/v2/a/referrers/sha256:abc", RouteReferrers, map[string]string{varName: "a", varDigest: "sha256:abc"}},
		{"a repository named like a route segment", "GET", "/v2/x/manifests/y/manifests/latest", RouteManifest, map[string]string{varName: "x/manifests/y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var match mux.RouteMatch
			if !s.router.Match(httptest.NewRequest(tc.method, tc.path, nil), &match) || match.Route == nil {
				t.Fatalf("%s %s does not match", tc.method, tc.path)
			}
			if got := match.Route.GetName(); got != tc.route {
				t.Fatalf("route %q, want %q", got, tc.route)
			}
			for k, v := range tc.vars {
				if match.Vars[k] != v {
					t.Fatalf("variable %s = %q, want %q", k, match.Vars[k], v)
				}
			}
		})
	}
}

// TestUnroutable checks that requests outside the table still get the
// OCI envelope.
func TestUnroutable(t *testing.T) {
	e := newTestEnv(t)
	e.do(http.MethodGet, "/v3/", nil).wantError(t, http.StatusNotFound, CodeNotFound)
	e.do(http.MethodGet, "/v2/a/nothing/here", nil).wantError(t, http.StatusNotFound, CodeNotFound)
	// A method the route does not have: 501 UNSUPPORTED (with
	// credentials, since writes are checked first).
	e.do(http.MethodPost, "/v2/a/tags/list", nil, withAuth()).wantError(t, http.StatusNotImplemented, CodeUnsupported)
	e.do(http.MethodPut, "/v2/", nil, withAuth()).wantError(t, http.StatusNotImplemented, CodeUnsupported)
}
