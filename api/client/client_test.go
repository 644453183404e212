package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

// seen is a request as the test server saw it.
type seen struct {
	method, path string
	query        url.Values
	auth         string
	body         string
}

// testServer answers each "METHOD /path" with a handler, and records the
// requests.
type testServer struct {
	mu   sync.Mutex
	reqs []seen
	srv  *httptest.Server
}

func newTestServer(t *testing.T, routes map[string]http.HandlerFunc) *testServer {
	t.Helper()
	ts := &testServer{}
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		ts.mu.Lock()
		ts.reqs = append(ts.reqs, seen{r.Method, r.URL.Path, r.URL.Query(), r.Header.Get("Authorization"), string(body)})
		ts.mu.Unlock()
		h, ok := routes[r.Method+" "+r.URL.Path]
		if !ok {
			writeJSON(w, http.StatusNotFound, api.ErrorResponse{Error: api.Error{Code: "NotFound", Message: "no route for " + r.URL.Path}})
			return
		}
		h(w, r)
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *testServer) last(t *testing.T) seen {
	t.Helper()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.reqs) == 0 {
		t.Fatal("no request")
	}
	return ts.reqs[len(ts.reqs)-1]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func answer(status int, v any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { writeJSON(w, status, v) }
}

func newClient(t *testing.T, ts *testServer, opts ...Opt) *Client {
	t.Helper()
	c, err := New(ts.srv.URL, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{in: "", want: DefaultEndpoint},
		{in: "unix:///run/x/providerd.sock", want: "unix:///run/x/providerd.sock"},
		{in: "unix://", bad: true},
		{in: "npipe:////./pipe/containerprovider", bad: runtime.GOOS != "windows", want: "npipe:////./pipe/containerprovider"},
		{in: "127.0.0.1:6000", want: "http://127.0.0.1:6000"},
		{in: "https://host.example:5050/", want: "https://host.example:5050"},
		{in: "http://host/prefix/", want: "http://host/prefix"},
		{in: "ftp://host", bad: true},
		{in: "http://", bad: true},
		{in: "http://user:pw@host", bad: true},
		{in: "http://host/?x=1", bad: true},
		{in: "http://[::1", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			c, err := New(tc.in)
			if tc.bad {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("New(%q) = %v, want invalid argument", tc.in, err)
				}
				return
			}
			if err != nil || c.Endpoint() != tc.want {
				t.Fatalf("New(%q): %v, endpoint %q, want %q", tc.in, err, c.Endpoint(), tc.want)
			}
		})
	}
}

// TestErrors checks the decoding of error answers: the message alone as
// Error(), the status, the request id, the dependents, and the class that
// errors.Is finds.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		status  int
		class   error // nil: no class
		message string
		deps    []string
	}{
		{
			name:    "not found",
			handler: answer(404, api.ErrorResponse{Error: api.Error{Code: "NotFound", Message: `image "Nano": not found`}}),
			status:  404, class: errdefs.ErrNotFound, message: `image "Nano": not found`,
		},
		{
			name: "conflict with dependents",
			handler: answer(409, api.ErrorResponse{Error: api.Error{Code: "Conflict", Message: "image WindowsServerCore 10.0.10586.0 cannot be removed",
				Dependents: []string{"image microsoft/iis 1.0.0.0", "container web1"}}}),
			status: 409, class: errdefs.ErrConflict, message: "image WindowsServerCore 10.0.10586.0 cannot be removed",
			deps: []string{"image microsoft/iis 1.0.0.0", "container web1"},
		},
		{
			name:    "already exists",
			handler: answer(409, api.ErrorResponse{Error: api.Error{Code: "AlreadyExists", Message: "source catalog: already exists"}}),
			status:  409, class: errdefs.ErrAlreadyExists, message: "source catalog: already exists",
		},
		{
			name:    "invalid argument",
			handler: answer(400, api.ErrorResponse{Error: api.Error{Code: "InvalidArgument", Message: "bad version"}}),
			status:  400, class: errdefs.ErrInvalidArgument, message: "bad version",
		},
		{
			name:    "unauthenticated",
			handler: answer(401, api.ErrorResponse{Error: api.Error{Code: "Unauthenticated", Message: "invalid bearer token: unauthenticated"}}),
			status:  401, class: errdefs.ErrUnauthenticated, message: "invalid bearer token: unauthenticated",
		},
		{
			name:    "internal has no class",
			handler: answer(500, api.ErrorResponse{Error: api.Error{Code: "Internal", Message: "internal server error (request id r1)"}}),
			status:  500, class: nil, message: "internal server error (request id r1)",
		},
		{
			name:    "unknown code has no class",
			handler: answer(400, api.ErrorResponse{Error: api.Error{Code: "Weird", Message: "what"}}),
			status:  400, class: nil, message: "what",
		},
		{
			name: "a proxy page gets the class of its status",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusBadGateway)
				_, _ = io.WriteString(w, "<html>\n<body>upstream down</body></html>")
			},
			status: 502, class: errdefs.ErrUnavailable, message: "providerd answered 502 Bad Gateway: <html> <body>upstream down</body></html>",
		},
		{
			name: "an empty 404",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNotFound)
			},
			status: 404, class: errdefs.ErrNotFound, message: "providerd answered 404 Not Found",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, map[string]http.HandlerFunc{
				"DELETE /v1/images": func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("X-Request-Id", "r1")
					tc.handler(w, r)
				},
			})
			_, err := newClient(t, ts).Remove(t.Context(), RemoveOptions{Name: "Nano"})
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v, want *Error", err, err)
			}
			if ce.StatusCode != tc.status || ce.Error() != tc.message || ce.RequestID != "r1" {
				t.Fatalf("error %+v (%q), want status %d message %q", ce, ce.Error(), tc.status, tc.message)
			}
			if !slices.Equal(ce.API.Dependents, tc.deps) {
				t.Fatalf("dependents %v, want %v", ce.API.Dependents, tc.deps)
			}
			classes := []error{errdefs.ErrInvalidArgument, errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrConflict,
				errdefs.ErrUnauthenticated, errdefs.ErrUnavailable, errdefs.ErrFailedPrecondition}
			for _, class := range classes {
				if got := errors.Is(err, class); got != (class == tc.class) {
					t.Errorf("errors.Is(err, %v) = %v", class, got)
				}
			}
		})
	}
}

// TestErrorCodesRoundTrip checks that every class survives the trip
// class -> code -> class.
func TestErrorCodesRoundTrip(t *testing.T) {
	for _, class := range []error{
		errdefs.ErrInvalidArgument, errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrConflict,
		errdefs.ErrFailedPrecondition, errdefs.ErrUnavailable, errdefs.ErrOutOfRange, errdefs.ErrTooLarge,
		errdefs.ErrUnauthenticated, errdefs.ErrPermissionDenied, errdefs.ErrNotImplemented,
	} {
		code := api.ErrorCode(fmt.Errorf("thing: %w", class))
		if got := api.ErrorClass(code); got != class { //nolint:errorlint // the class itself
			t.Errorf("%v -> %q -> %v", class, code, got)
		}
	}
	if code := api.ErrorCode(errors.New("plain")); code != api.CodeInternal {
		t.Errorf("unclassified code %q", code)
	}
	if code := api.ErrorCode(context.DeadlineExceeded); code != api.CodeUnavailable {
		t.Errorf("deadline code %q", code)
	}
}

// TestRequests checks what each method sends and what it decodes.
func TestRequests(t *testing.T) {
	job := api.Job{ID: "j1", Kind: "install", State: api.JobQueued}
	nano := api.Image{Name: "NanoServer", Version: "10.0.10586.0", IsOSImage: true}
	ts := newTestServer(t, map[string]http.HandlerFunc{
		"GET /healthz": answer(200, api.Health{Status: "ok", Version: "v1"}),
		"GET /metrics": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			_, _ = io.WriteString(w, "providerd_installs_total 1\n")
		},
		"GET /v1/sources":         answer(200, api.SourcesResponse{Sources: []api.Source{{Name: "catalog", Location: "http://127.0.0.1:5000"}}}),
		"POST /v1/sources":        answer(201, api.Source{Name: "hub", Location: "https://r.example"}),
		"DELETE /v1/sources/a b":  func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) },
		"GET /v1/find":            answer(200, api.FindResponse{Images: []api.FindEntry{{Name: "NanoServer", Source: "catalog"}}}),
		"POST /v1/images/install": answer(202, job),
		"GET /v1/jobs":            answer(200, api.JobsResponse{Jobs: []api.Job{job}}),
		"GET /v1/jobs/j1":         answer(200, job),
		"POST /v1/jobs/j1/cancel": answer(200, api.Job{ID: "j1", State: api.JobCanceled}),
		"GET /v1/images":          answer(200, api.ImagesResponse{Images: []api.Image{nano}}),
		"DELETE /v1/images":       answer(200, api.RemoveResult{Removed: []api.Image{nano}, BlobsDeleted: 2, BytesFreed: 99}),
	})
	c := newClient(t, ts, WithToken("s3cret"))
	ctx := t.Context()

	check := func(t *testing.T, method, path string, query url.Values, body string) {
		t.Helper()
		got := ts.last(t)
		if got.method != method || got.path != path || got.auth != "Bearer s3cret" {
			t.Fatalf("request %s %s auth %q, want %s %s with the token", got.method, got.path, got.auth, method, path)
		}
		if query == nil {
			query = url.Values{}
		}
		if got.query.Encode() != query.Encode() {
			t.Fatalf("query %q, want %q", got.query.Encode(), query.Encode())
		}
		if strings.TrimSpace(got.body) != body {
			t.Fatalf("body %q, want %q", got.body, body)
		}
	}

	t.Run("health", func(t *testing.T) {
		h, err := c.Health(ctx)
		if err != nil || h.Status != "ok" || h.Version != "v1" {
			t.Fatalf("%+v %v", h, err)
		}
		check(t, "GET", "/healthz", nil, "")
	})
	t.Run("metrics", func(t *testing.T) {
		m, err := c.Metrics(ctx)
		if err != nil || m != "providerd_installs_total 1\n" {
			t.Fatalf("%q %v", m, err)
		}
	})
	t.Run("sources", func(t *testing.T) {
		s, err := c.Sources(ctx)
		if err != nil || len(s) != 1 || s[0].Name != "catalog" {
			t.Fatalf("%+v %v", s, err)
		}
		added, err := c.AddSource(ctx, api.Source{Name: "hub", Location: "https://r.example", Username: "u", Password: "p"})
		if err != nil || added.Name != "hub" {
			t.Fatalf("%+v %v", added, err)
		}
		check(t, "POST", "/v1/sources", nil, `{"name":"hub","location":"https://r.example","username":"u","password":"p"}`)
		if err := c.RemoveSource(ctx, "a b"); err != nil {
			t.Fatal(err)
		}
		check(t, "DELETE", "/v1/sources/a b", nil, "")
		if err := c.RemoveSource(ctx, ""); !errdefs.IsInvalidArgument(err) {
			t.Fatalf("empty name: %v", err)
		}
	})
	t.Run("find", func(t *testing.T) {
		res, err := c.Find(ctx, FindOptions{Name: "Nano*", VersionOptions: api.VersionOptions{MinimumVersion: "10.0", AllVersions: true}, Source: "catalog"})
		if e := res.Images; err != nil || len(e) != 1 {
			t.Fatalf("%+v %v", e, err)
		}
		check(t, "GET", "/v1/find", url.Values{"name": {"Nano*"}, "minimumVersion": {"10.0"}, "allVersions": {"true"}, "source": {"catalog"}}, "")
		if _, err := c.Find(ctx, FindOptions{}); err != nil {
			t.Fatal(err)
		}
		check(t, "GET", "/v1/find", nil, "")
	})
	t.Run("install", func(t *testing.T) {
		j, err := c.Install(ctx, api.InstallRequest{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "10.0.10586.0"}, NoParents: true})
		if err != nil || j.ID != "j1" {
			t.Fatalf("%+v %v", j, err)
		}
		check(t, "POST", "/v1/images/install", nil, `{"name":"NanoServer","requiredVersion":"10.0.10586.0","noParents":true}`)
	})
	t.Run("jobs", func(t *testing.T) {
		jobs, err := c.Jobs(ctx)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("%+v %v", jobs, err)
		}
		j, err := c.Job(ctx, "j1")
		if err != nil || j.ID != "j1" {
			t.Fatalf("%+v %v", j, err)
		}
		j, err = c.Cancel(ctx, "j1")
		if err != nil || j.State != api.JobCanceled {
			t.Fatalf("%+v %v", j, err)
		}
		check(t, "POST", "/v1/jobs/j1/cancel", nil, "")
		if _, err := c.Job(ctx, "missing"); !errdefs.IsNotFound(err) {
			t.Fatalf("missing job: %v", err)
		}
	})
	t.Run("images", func(t *testing.T) {
		imgs, err := c.Images(ctx, ImagesOptions{Name: "Nano*", Publisher: "CN=Microsoft", ChildOf: "WindowsServerCore",
			VersionOptions: api.VersionOptions{MaximumVersion: "11.0"}})
		if err != nil || len(imgs) != 1 || !imgs[0].IsOSImage {
			t.Fatalf("%+v %v", imgs, err)
		}
		check(t, "GET", "/v1/images", url.Values{"name": {"Nano*"}, "publisher": {"CN=Microsoft"}, "maximumVersion": {"11.0"}, "childOf": {"WindowsServerCore"}}, "")
		res, err := c.Remove(ctx, RemoveOptions{ID: "abcd"})
		if err != nil || res.BytesFreed != 99 || len(res.Removed) != 1 {
			t.Fatalf("%+v %v", res, err)
		}
		check(t, "DELETE", "/v1/images", url.Values{"id": {"abcd"}}, "")
	})
}

func TestConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := New(url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Health(t.Context())
	var ce *Error
	if err == nil || errors.As(err, &ce) || !strings.Contains(err.Error(), "providerd at 127.0.0.1:") {
		t.Fatalf("error %v, want a connection error naming the endpoint", err)
	}
}
