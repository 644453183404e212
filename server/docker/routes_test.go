package docker

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/gorilla/mux"
)

// TestRouteTable walks the router: every route is a table line under its
// name or its versioned twin, with the table's path and methods and a
// handler, and builds URLs that route back to itself.
func TestRouteTable(t *testing.T) {
	e := newTestEnv(t, &fakeBackend{})
	sample := map[string]string{varName: "microsoft/iis:1.0.0.0", varVersion: "1.50", varID: "c1"}
	handlers := e.s.handlers()
	seen := map[string]bool{}
	err := e.s.router.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		name := rt.GetName()
		i := slices.IndexFunc(routes, func(r route) bool { return r.name == name || versioned(r.name) == name })
		if i < 0 {
			t.Errorf("route %q is not in the table", name)
			return nil
		}
		seen[name] = true
		want := routes[i].path
		if name != routes[i].name {
			want = versionPathPattern + want
		}
		if tmpl, _ := rt.GetPathTemplate(); tmpl != want {
			t.Errorf("route %s: template %q, want %q", name, tmpl, want)
		}
		methods, _ := rt.GetMethods()
		if !slices.Equal(methods, routes[i].methods) {
			t.Errorf("route %s: methods %v, table %v", name, methods, routes[i].methods)
		}
		for _, m := range methods {
			if handlers[routes[i].name][m] == nil {
				t.Errorf("route %s: no handler for %s", name, m)
			}
		}
		if rt.GetHandler() == nil {
			t.Errorf("route %s: no handler attached", name)
		}
		var pairs []string
		vars, _ := rt.GetVarNames()
		for _, v := range vars {
			pairs = append(pairs, v, sample[v])
		}
		u, err := rt.URLPath(pairs...)
		if err != nil {
			t.Errorf("route %s: URLPath: %v", name, err)
			return nil
		}
		for _, m := range methods {
			var match mux.RouteMatch
			if !e.s.router.Match(httptest.NewRequest(m, u.String(), nil), &match) || match.Route.GetName() != name {
				t.Errorf("route %s: %s %s does not route back", name, m, u)
				continue
			}
			for _, v := range vars {
				if match.Vars[v] != sample[v] {
					t.Errorf("route %s: variable %s = %q, want %q", name, v, match.Vars[v], sample[v])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if !seen[r.name] || !seen[versioned(r.name)] {
			t.Errorf("table route %s is not in the router under both names", r.name)
		}
	}
}

// TestRouteMatching checks the paths that are easy to confuse.
func TestRouteMatching(t *testing.T) {
	e := newTestEnv(t, &fakeBackend{})
	for _, tc := range []struct {
		name, method, path, route, image string
	}{
		{"list is not an inspect", "GET", "/v1.50/images/json", versioned(RouteImages), ""},
		{"search", "GET", "/images/search", RouteImageSearch, ""},
		{"pull", "POST", "/v1.51/images/create", versioned(RouteImageCreate), ""},
		{"inspect with a slash", "GET", "/images/microsoft/iis/json", RouteImageInspect, "microsoft/iis"},
		{"inspect with a domain and tag", "GET", "/v1.50/images/docker.io/library/nanoserver:latest/json", versioned(RouteImageInspect), "docker.io/library/nanoserver:latest"},
		{"history", "GET", "/images/microsoft/iis/history", RouteImageHistory, "microsoft/iis"},
		{"tag", "POST", "/images/nanoserver/tag", RouteImageTag, "nanoserver"},
		{"delete by digest", "DELETE", "/images/nanoserver@sha256:" + hex64('a'), RouteImageDelete, "nanoserver@sha256:" + hex64('a')},
		{"head ping", "HEAD", "/v1.24/_ping", versioned(RoutePing), ""},
		{"container list is not a container", "GET", "/containers/json", RouteContainers, ""},
		{"container create", "POST", "/v1.51/containers/create", versioned(RouteContainerCreate), ""},
		{"container start", "POST", "/containers/c1/start", RouteContainerStart, ""},
		{"container inspect is not the list", "GET", "/v1.51/containers/c1/json", versioned(RouteContainerInspect), ""},
		{"docker cp stat", "HEAD", "/containers/c1/archive", RouteContainerArchive, ""},
		{"docker cp", "PUT", "/v1.51/containers/c1/archive", versioned(RouteContainerArchive), ""},
		{"attach", "POST", "/v1.51/containers/c1/attach", versioned(RouteContainerAttach), ""},
		{"container delete", "DELETE", "/containers/c1", RouteContainerDelete, ""},
		{"commit", "POST", "/v1.51/commit", versioned(RouteCommit), ""},
		{"save by names", "GET", "/v1.51/images/get", versioned(RouteImagesSave), ""},
		{"save one with a slash", "GET", "/images/microsoft/iis:latest/get", RouteImageSave, "microsoft/iis:latest"},
		{"load", "POST", "/v1.51/images/load", versioned(RouteImagesLoad), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var match mux.RouteMatch
			if !e.s.router.Match(httptest.NewRequest(tc.method, tc.path, nil), &match) || match.Route == nil {
				t.Fatalf("%s %s does not match", tc.method, tc.path)
			}
			if got := match.Route.GetName(); got != tc.route {
				t.Fatalf("route %q, want %q", got, tc.route)
			}
			if tc.image != "" && match.Vars[varName] != tc.image {
				t.Fatalf("name %q, want %q", match.Vars[varName], tc.image)
			}
		})
	}
}

// TestUnsupported checks that everything outside the subset is a 501 that
// names the request, never a 404, and calls nothing.
func TestUnsupported(t *testing.T) {
	e := newTestEnv(t, &fakeBackend{})
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/v1.50/containers/c1/archive"},
		{http.MethodPost, "/containers/c1/exec"},
		{http.MethodPost, "/containers/c1/wait"},
		{http.MethodPost, "/images/prune"},
		{http.MethodPost, "/images/get"},
		{http.MethodGet, "/images/load"},
		{http.MethodGet, "/images/nanoserver"},
		{http.MethodPut, "/_ping"},
		{http.MethodPost, "/v1.50/build"},
		{http.MethodGet, "/v1.50/networks"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			e.do(t, tc.method, tc.path).wantError(t, http.StatusNotImplemented, tc.method+" "+tc.path+" is not supported by providerd")
		})
	}
	if calls := e.fake.called(); len(calls) != 0 {
		t.Fatalf("backend called: %v", calls)
	}
}
