package provider

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
	e := newTestEnv(t, &fakeBackend{})
	s := e.s
	sample := map[string]string{varName: "catalog", varID: "0123456789abcdef", varRef: "web1"}
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
			if !s.router.Match(httptest.NewRequest(m, u.String(), nil), &match) || match.Route.GetName() != name {
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
		if !seen[r.name] {
			t.Errorf("table route %s is not in the router", r.name)
		}
	}
}

// TestRouteMatching checks the paths that are easy to confuse.
func TestRouteMatching(t *testing.T) {
	e := newTestEnv(t, &fakeBackend{})
	for _, tc := range []struct {
		name, method, path string
		route              string
		vars               map[string]string
	}{
		{"install is not an image query", "POST", "/v1/images/install", RouteInstall, nil},
		{"images", "DELETE", "/v1/images", RouteImages, nil},
		{"job", "GET", "/v1/jobs/abc", RouteJob, map[string]string{varID: "abc"}},
		{"job events", "GET", "/v1/jobs/abc/events", RouteJobEvents, map[string]string{varID: "abc"}},
		{"job cancel", "POST", "/v1/jobs/abc/cancel", RouteJobCancel, map[string]string{varID: "abc"}},
		{"source", "DELETE", "/v1/sources/my.registry", RouteSource, map[string]string{varName: "my.registry"}},
		{"save is not an image query", "POST", "/v1/images/save", RouteSave, nil},
		{"load", "POST", "/v1/images/load", RouteLoad, nil},
		{"commit", "POST", "/v1/images/commit", RouteCommit, nil},
		{"containers", "POST", "/v1/containers", RouteContainers, nil},
		{"container", "DELETE", "/v1/containers/web1", RouteContainer, map[string]string{varRef: "web1"}},
		{"container by id prefix", "GET", "/v1/containers/0123abcd", RouteContainer, map[string]string{varRef: "0123abcd"}},
		{"container start", "POST", "/v1/containers/web1/start", RouteContainerStart, map[string]string{varRef: "web1"}},
		{"container stop", "POST", "/v1/containers/web1/stop", RouteContainerStop, map[string]string{varRef: "web1"}},
		{"container archive", "PUT", "/v1/containers/web1/archive", RouteContainerArchive, map[string]string{varRef: "web1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var match mux.RouteMatch
			if !e.s.router.Match(httptest.NewRequest(tc.method, tc.path, nil), &match) || match.Route == nil {
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

// TestUnroutable checks that requests outside the table get the envelope.
func TestUnroutable(t *testing.T) {
	e := newTestEnv(t, &fakeBackend{})
	e.do(t, http.MethodGet, "/v2/", nil).wantError(t, http.StatusNotFound, "NotFound")
	e.do(t, http.MethodGet, "/v1/jobs/a/b/c", nil).wantError(t, http.StatusNotFound, "NotFound")
	e.do(t, http.MethodPut, "/v1/images", nil).wantError(t, http.StatusNotImplemented, "NotImplemented")
	e.do(t, http.MethodGet, "/v1/images/install", nil).wantError(t, http.StatusNotImplemented, "NotImplemented")
	e.do(t, http.MethodGet, "/v1/images/save", nil).wantError(t, http.StatusNotImplemented, "NotImplemented")
	e.do(t, http.MethodPost, "/v1/containers/web1", nil).wantError(t, http.StatusNotImplemented, "NotImplemented")
	e.do(t, http.MethodPost, "/v1/containers/web1/archive", nil).wantError(t, http.StatusNotImplemented, "NotImplemented")
	e.do(t, http.MethodGet, "/v1/containers/web1/logs", nil).wantError(t, http.StatusNotFound, "NotFound")
	if calls := e.fake.called(); len(calls) != 0 {
		t.Fatalf("backend called: %v", calls)
	}
}
