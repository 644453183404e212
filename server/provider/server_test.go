package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider"
	"github.com/containerprovider/containerprovider/server/middleware"
)

func TestNewRefusesNilBackend(t *testing.T) {
	if _, err := New(nil); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("New(nil) = %v, want invalid argument", err)
	}
}

// TestErrorEnvelope checks the one adapter: the status is errdefs.HTTPStatus's,
// the code the class's name, the message the error's text except for 500s,
// and a DependentsError fills the dependents.
func TestErrorEnvelope(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		code       string
		message    string // exact, when set
		dependents []string
	}{
		// The message leaves out the class, which the code names.
		{"invalid", fmt.Errorf("version %q does not parse: %w", "x", errdefs.ErrInvalidArgument), 400, "InvalidArgument", `version "x" does not parse`, nil},
		{"not found", fmt.Errorf("image %q is not installed: %w", "Nano", errdefs.ErrNotFound), 404, "NotFound", `image "Nano" is not installed`, nil},
		{"only the class", errdefs.ErrNotFound, 404, "NotFound", "not found", nil},
		{"already exists", fmt.Errorf("source catalog: %w", errdefs.ErrAlreadyExists), 409, "AlreadyExists", "", nil},
		{"failed precondition", fmt.Errorf("blob sha256:ab: %w", errdefs.ErrFailedPrecondition), 400, "FailedPrecondition", "", nil},
		{"unavailable", fmt.Errorf("source catalog: %w", errdefs.ErrUnavailable), 503, "Unavailable", "", nil},
		{"too large", errdefs.ErrTooLarge, 413, "TooLarge", "", nil},
		{"not implemented", errdefs.ErrNotImplemented, 501, "NotImplemented", "", nil},
		{"timeout", fmt.Errorf("source catalog: %w", context.DeadlineExceeded), 503, "Unavailable", "", nil},
		{
			"dependents", &provider.DependentsError{Image: "WindowsServerCore 10.0.10586.0", Dependents: []string{"image microsoft/iis 1.0.0.0", "container web1"}},
			409, "Conflict",
			"image WindowsServerCore 10.0.10586.0 cannot be removed: image microsoft/iis 1.0.0.0, container web1 depend on it",
			[]string{"image microsoft/iis 1.0.0.0", "container web1"},
		},
		{
			"wrapped dependents", fmt.Errorf("remove: %w", &provider.DependentsError{Image: "A 1.0.0.0", Dependents: []string{"image B 1.0.0.0"}}),
			409, "Conflict", "", []string{"image B 1.0.0.0"},
		},
		{"unclassified is internal", errors.New("open /var/lib/secret/path: disk on fire"), 500, "Internal", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, &fakeBackend{
				remove: func(context.Context, provider.RemoveOptions) (api.RemoveResult, error) {
					return api.RemoveResult{}, tc.err
				},
			})
			resp := e.do(t, http.MethodDelete, "/v1/images?name=A", nil)
			got := resp.wantError(t, tc.status, tc.code)
			if tc.message != "" && got.Message != tc.message {
				t.Fatalf("message %q, want %q", got.Message, tc.message)
			}
			if !slices.Equal(got.Dependents, tc.dependents) {
				t.Fatalf("dependents %v, want %v", got.Dependents, tc.dependents)
			}
			if tc.status == 500 {
				id := resp.Header.Get(middleware.HeaderRequestID)
				if strings.Contains(got.Message, "disk") || id == "" || !strings.Contains(got.Message, id) {
					t.Fatalf("internal message %q (request id %q): want a generic text with the request id", got.Message, id)
				}
			}
		})
	}
}

// TestPanicGetsTheEnvelope: a backend that panics (as the engine's
// unimplemented bodies do) gives a 500 in the envelope, and the server
// keeps serving.
func TestPanicGetsTheEnvelope(t *testing.T) {
	e := newTestEnv(t, &fakeBackend{
		jobs: func(context.Context) ([]api.Job, error) { panic("unimplemented") },
	})
	e.do(t, http.MethodGet, "/v1/jobs", nil).wantError(t, http.StatusInternalServerError, "Internal")
	e.do(t, http.MethodGet, "/healthz", nil).want(t, http.StatusOK)
}

func TestHealthAndMetrics(t *testing.T) {
	metricsErr := error(nil)
	e := newTestEnv(t, &fakeBackend{writeMetrics: func(w io.Writer) error {
		if metricsErr != nil {
			return metricsErr
		}
		_, err := io.WriteString(w, "# TYPE providerd_installs_total counter\nproviderd_installs_total 3\n")
		return err
	}})
	var h api.Health
	resp := e.do(t, http.MethodGet, "/healthz", nil).want(t, http.StatusOK)
	resp.decode(t, &h)
	if h != (api.Health{Status: "ok", Version: "test"}) || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("health %+v, content type %q", h, resp.Header.Get("Content-Type"))
	}
	e.do(t, http.MethodGet, "/healthz?verbose=1", nil).wantError(t, http.StatusBadRequest, "InvalidArgument")

	resp = e.do(t, http.MethodGet, "/metrics", nil).want(t, http.StatusOK)
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("metrics content type %q", ct)
	}
	if string(resp.body) != "# TYPE providerd_installs_total counter\nproviderd_installs_total 3\n" {
		t.Fatalf("metrics body %q", resp.body)
	}
	metricsErr = errors.New("counter store broken")
	e.do(t, http.MethodGet, "/metrics", nil).wantError(t, http.StatusInternalServerError, "Internal")
}

func TestSources(t *testing.T) {
	var added []api.Source
	e := newTestEnv(t, &fakeBackend{
		sources: func(context.Context) ([]api.Source, error) {
			return []api.Source{{Name: "catalog", Location: "http://127.0.0.1:5000", Trusted: true, Username: "u", Password: "leak"}}, nil
		},
		addSource: func(_ context.Context, s api.Source) (api.Source, error) {
			if s.Name == "catalog" {
				return api.Source{}, fmt.Errorf("source %q: %w", s.Name, errdefs.ErrAlreadyExists)
			}
			if s.Location == "" {
				return api.Source{}, fmt.Errorf("source %q: no location: %w", s.Name, errdefs.ErrInvalidArgument)
			}
			added = append(added, s)
			return s, nil
		},
		removeSource: func(_ context.Context, name string) error {
			if name != "hub" {
				return notFound("source " + name)
			}
			return nil
		},
	})

	t.Run("list leaves passwords out", func(t *testing.T) {
		var got api.SourcesResponse
		e.do(t, http.MethodGet, "/v1/sources", nil).want(t, http.StatusOK).decode(t, &got)
		if len(got.Sources) != 1 || got.Sources[0].Password != "" || got.Sources[0].Username != "u" || !got.Sources[0].Trusted {
			t.Fatalf("sources %+v", got.Sources)
		}
	})
	t.Run("add", func(t *testing.T) {
		src := api.Source{Name: "hub", Location: "https://registry.example", Trusted: true, Username: "u", Password: "p"}
		resp := e.do(t, http.MethodPost, "/v1/sources", src).want(t, http.StatusCreated)
		var got api.Source
		resp.decode(t, &got)
		if got.Name != "hub" || got.Password != "" || !got.Trusted || !strings.Contains(string(resp.body), `"trusted":true`) {
			t.Fatalf("added %s", resp.body)
		}
		if loc := resp.Header.Get("Location"); loc != "/v1/sources/hub" {
			t.Fatalf("Location %q", loc)
		}
		if len(added) != 1 || !reflect.DeepEqual(added[0], src) {
			t.Fatalf("backend got %+v, want %+v", added, src)
		}
	})
	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"taken name", api.Source{Name: "catalog", Location: "http://x"}, 409, "AlreadyExists"},
		{"provider refuses", api.Source{Name: "x"}, 400, "InvalidArgument"},
		{"malformed JSON", `{"name": "x",`, 400, "InvalidArgument"},
		{"unknown field", `{"name": "x", "location": "http://x", "installationPolicy": "Trusted"}`, 400, "InvalidArgument"},
		{"wrong type", `{"name": 3}`, 400, "InvalidArgument"},
		{"empty body", ``, 400, "InvalidArgument"},
		{"two objects", `{"name":"x","location":"http://x"}{"name":"y"}`, 400, "InvalidArgument"},
		{"trailing garbage", `{"name":"x","location":"http://x"} ]`, 400, "InvalidArgument"},
		{"too large", `{"name":"` + strings.Repeat("a", MaxBodySize) + `"}`, 413, "TooLarge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(added)
			e.do(t, http.MethodPost, "/v1/sources", tc.body).wantError(t, tc.status, tc.code)
			if len(added) != before {
				t.Fatalf("a refused request added a source")
			}
		})
	}
	t.Run("trailing white space is fine", func(t *testing.T) {
		e.do(t, http.MethodPost, "/v1/sources", "{\"name\":\"ws\",\"location\":\"http://x\"}\n\n").want(t, http.StatusCreated)
	})
	t.Run("remove", func(t *testing.T) {
		resp := e.do(t, http.MethodDelete, "/v1/sources/hub", nil).want(t, http.StatusNoContent)
		if len(resp.body) != 0 {
			t.Fatalf("204 with a body %q", resp.body)
		}
		e.do(t, http.MethodDelete, "/v1/sources/nothing", nil).wantError(t, http.StatusNotFound, "NotFound")
	})
}

func TestFind(t *testing.T) {
	var got []provider.FindOptions
	e := newTestEnv(t, &fakeBackend{findFn: func(_ context.Context, o provider.FindOptions) ([]api.FindEntry, error) {
		got = append(got, o)
		if o.Name == "Missing" {
			return nil, fmt.Errorf("image %q: %w", o.Name, errdefs.ErrNotFound)
		}
		if o.Name == "none*" {
			return nil, nil
		}
		return []api.FindEntry{{Name: "NanoServer", Version: "10.0.10586.0", Source: "catalog", IsOSImage: true}}, nil
	}})
	for _, tc := range []struct {
		name  string
		query string
		want  provider.FindOptions
	}{
		{"no options", "", provider.FindOptions{}},
		{"every option", "?name=Nano*&minimumVersion=10.0&maximumVersion=10.1&allVersions=true&source=catalog",
			provider.FindOptions{Name: "Nano*", VersionOptions: api.VersionOptions{MinimumVersion: "10.0", MaximumVersion: "10.1", AllVersions: true}, Source: "catalog"}},
		{"required version", "?name=NanoServer&requiredVersion=10.0.10586.0",
			provider.FindOptions{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "10.0.10586.0"}}},
		{"bare switch", "?allVersions", provider.FindOptions{VersionOptions: api.VersionOptions{AllVersions: true}}},
		{"switch off", "?allVersions=false", provider.FindOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			var body api.FindResponse
			e.do(t, http.MethodGet, "/v1/find"+tc.query, nil).want(t, http.StatusOK).decode(t, &body)
			if len(got) != 1 || !reflect.DeepEqual(got[0], tc.want) {
				t.Fatalf("backend options %+v, want %+v", got, tc.want)
			}
			if len(body.Images) != 1 || body.Images[0].Source != "catalog" {
				t.Fatalf("images %+v", body.Images)
			}
		})
	}
	t.Run("empty is a list", func(t *testing.T) {
		resp := e.do(t, http.MethodGet, "/v1/find?name=none*", nil).want(t, http.StatusOK)
		if strings.TrimSpace(string(resp.body)) != `{"images":[]}` {
			t.Fatalf("body %s", resp.body)
		}
	})
	t.Run("not found", func(t *testing.T) {
		e.do(t, http.MethodGet, "/v1/find?name=Missing", nil).wantError(t, http.StatusNotFound, "NotFound")
	})
	for _, tc := range []struct{ name, query string }{
		{"unknown parameter", "?nmae=NanoServer"},
		{"parameter twice", "?name=a&name=b"},
		{"bad boolean", "?allVersions=maybe"},
		{"bad escape", "?name=%zz"},
		{"publisher is not a find option", "?publisher=CN=Microsoft"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			e.do(t, http.MethodGet, "/v1/find"+tc.query, nil).wantError(t, http.StatusBadRequest, "InvalidArgument")
			if got != nil {
				t.Fatalf("backend called with %+v", got)
			}
		})
	}
}

func TestImages(t *testing.T) {
	var gets []provider.GetOptions
	var removes []provider.RemoveOptions
	iis := api.Image{Name: "microsoft/iis", Version: "1.0.0.0", Publisher: "CN=Microsoft", ID: "abcd", Digest: "sha256:abcd",
		ParentImage: &api.ParentRef{Name: "WindowsServerCore", Version: "10.0.10586.0"}, Installed: time.Unix(1700000000, 0).UTC()}
	e := newTestEnv(t, &fakeBackend{
		images: func(_ context.Context, o provider.GetOptions) ([]api.Image, error) {
			gets = append(gets, o)
			return []api.Image{iis}, nil
		},
		remove: func(_ context.Context, o provider.RemoveOptions) (api.RemoveResult, error) {
			removes = append(removes, o)
			if o.Name == "WindowsServerCore" {
				return api.RemoveResult{}, &provider.DependentsError{Image: "WindowsServerCore 10.0.10586.0", Dependents: []string{"image microsoft/iis 1.0.0.0"}}
			}
			if o.Name == "*" && !o.Force {
				return api.RemoveResult{}, &provider.MatchesError{Name: "*", Matches: []api.Image{iis, {Name: "WindowsServerCore", Version: "10.0.10586.0"}}}
			}
			return api.RemoveResult{Removed: []api.Image{iis}, BlobsDeleted: 3, BytesFreed: 1234}, nil
		},
	})
	t.Run("get forwards every filter", func(t *testing.T) {
		var body api.ImagesResponse
		e.do(t, http.MethodGet, "/v1/images?name=micro*&publisher=CN%3DMicrosoft&requiredVersion=1.0&childOf=WindowsServerCore", nil).
			want(t, http.StatusOK).decode(t, &body)
		want := provider.GetOptions{Name: "micro*", Publisher: "CN=Microsoft", VersionOptions: api.VersionOptions{RequiredVersion: "1.0"}, ChildOf: "WindowsServerCore"}
		if len(gets) != 1 || !reflect.DeepEqual(gets[0], want) {
			t.Fatalf("options %+v, want %+v", gets, want)
		}
		if len(body.Images) != 1 || !reflect.DeepEqual(body.Images[0], iis) {
			t.Fatalf("images %+v", body.Images)
		}
	})
	t.Run("get refuses an unknown filter", func(t *testing.T) {
		e.do(t, http.MethodGet, "/v1/images?parent=x", nil).wantError(t, http.StatusBadRequest, "InvalidArgument")
	})
	t.Run("remove by name and versions", func(t *testing.T) {
		var res api.RemoveResult
		e.do(t, http.MethodDelete, "/v1/images?name=microsoft/iis&allVersions=true", nil).want(t, http.StatusOK).decode(t, &res)
		if res.BytesFreed != 1234 || res.BlobsDeleted != 3 || len(res.Removed) != 1 {
			t.Fatalf("result %+v", res)
		}
		if want := (provider.RemoveOptions{Name: "microsoft/iis", VersionOptions: api.VersionOptions{AllVersions: true}}); !reflect.DeepEqual(removes[len(removes)-1], want) {
			t.Fatalf("options %+v", removes[len(removes)-1])
		}
	})
	t.Run("remove by id", func(t *testing.T) {
		e.do(t, http.MethodDelete, "/v1/images?id=abcd1234", nil).want(t, http.StatusOK)
		if want := (provider.RemoveOptions{ID: "abcd1234"}); !reflect.DeepEqual(removes[len(removes)-1], want) {
			t.Fatalf("options %+v", removes[len(removes)-1])
		}
	})
	t.Run("remove by ids, force and what-if", func(t *testing.T) {
		for q, want := range map[string]provider.RemoveOptions{
			"?id=abcd1234,sha256:ef01&whatIf=true": {IDs: []string{"abcd1234", "sha256:ef01"}, WhatIf: true},
			"?name=a*&force=true":                  {Name: "a*", Force: true},
			"?name=a*&force&whatIf=false":          {Name: "a*", Force: true},
		} {
			e.do(t, http.MethodDelete, "/v1/images"+q, nil).want(t, http.StatusOK)
			if got := removes[len(removes)-1]; !reflect.DeepEqual(got, want) {
				t.Errorf("%s: options %+v, want %+v", q, got, want)
			}
		}
	})
	t.Run("remove of several without force", func(t *testing.T) {
		got := e.do(t, http.MethodDelete, "/v1/images?name=*", nil).wantError(t, http.StatusConflict, "Conflict")
		if len(got.Matches) != 2 || got.Matches[0].Name != "microsoft/iis" {
			t.Fatalf("matches %+v", got.Matches)
		}
	})
	t.Run("remove with dependents", func(t *testing.T) {
		got := e.do(t, http.MethodDelete, "/v1/images?name=WindowsServerCore", nil).wantError(t, http.StatusConflict, "Conflict")
		if !slices.Equal(got.Dependents, []string{"image microsoft/iis 1.0.0.0"}) {
			t.Fatalf("dependents %v", got.Dependents)
		}
	})
	for _, tc := range []struct{ name, query string }{
		{"nothing selected", ""},
		{"only version options", "?allVersions=true"},
		{"name and id", "?name=a&id=abcd"},
		{"id with versions", "?id=abcd&requiredVersion=1.0"},
		{"unknown parameter", "?name=a&recursive=true"},
		{"a force that is not a boolean", "?name=a&force=maybe"},
	} {
		t.Run("remove refuses "+tc.name, func(t *testing.T) {
			before := len(removes)
			e.do(t, http.MethodDelete, "/v1/images"+tc.query, nil).wantError(t, http.StatusBadRequest, "InvalidArgument")
			if len(removes) != before {
				t.Fatal("backend called")
			}
		})
	}
}

func TestJobs(t *testing.T) {
	job := api.Job{ID: "j1", Kind: "install", State: api.JobRunning, Request: api.InstallRequest{Name: "NanoServer"}}
	var installed []api.InstallRequest
	e := newTestEnv(t, &fakeBackend{
		installFn: func(_ context.Context, req api.InstallRequest) (api.Job, error) {
			if req.Name == "" {
				return api.Job{}, fmt.Errorf("install: no name: %w", errdefs.ErrInvalidArgument)
			}
			installed = append(installed, req)
			return job, nil
		},
		jobs: func(context.Context) ([]api.Job, error) { return []api.Job{job}, nil },
		job: func(_ context.Context, id string) (api.Job, error) {
			if id != "j1" {
				return api.Job{}, notFound("job " + id)
			}
			return job, nil
		},
		cancel: func(_ context.Context, id string) (api.Job, error) {
			if id != "j1" {
				return api.Job{}, notFound("job " + id)
			}
			c := job
			c.State = api.JobCanceled
			return c, nil
		},
	})
	t.Run("install is accepted", func(t *testing.T) {
		req := api.InstallRequest{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "10.0.10586.0"}, Force: true, NoParents: true, Source: "catalog"}
		resp := e.do(t, http.MethodPost, "/v1/images/install", req).want(t, http.StatusAccepted)
		if loc := resp.Header.Get("Location"); loc != "/v1/jobs/j1" {
			t.Fatalf("Location %q", loc)
		}
		var got api.Job
		resp.decode(t, &got)
		if got.ID != "j1" || got.State != api.JobRunning {
			t.Fatalf("job %+v", got)
		}
		if len(installed) != 1 || installed[0] != req {
			t.Fatalf("backend got %+v, want %+v", installed, req)
		}
	})
	for _, tc := range []struct {
		name, query string
		body        any
		status      int
		code        string
	}{
		{"provider refuses", "", api.InstallRequest{}, 400, "InvalidArgument"},
		{"unknown field", "", `{"name":"NanoServer","version":"1.0"}`, 400, "InvalidArgument"},
		{"malformed", "", `{"name":`, 400, "InvalidArgument"},
		{"bad follow", "?follow=sometimes", api.InstallRequest{Name: "NanoServer"}, 400, "InvalidArgument"},
		{"unknown parameter", "?detach=true", api.InstallRequest{Name: "NanoServer"}, 400, "InvalidArgument"},
	} {
		t.Run("install refuses "+tc.name, func(t *testing.T) {
			before := len(installed)
			e.do(t, http.MethodPost, "/v1/images/install"+tc.query, tc.body).wantError(t, tc.status, tc.code)
			if len(installed) != before {
				t.Fatal("a job was started")
			}
		})
	}
	t.Run("list", func(t *testing.T) {
		var got api.JobsResponse
		e.do(t, http.MethodGet, "/v1/jobs", nil).want(t, http.StatusOK).decode(t, &got)
		if len(got.Jobs) != 1 || got.Jobs[0].ID != "j1" {
			t.Fatalf("jobs %+v", got)
		}
	})
	t.Run("show", func(t *testing.T) {
		var got api.Job
		e.do(t, http.MethodGet, "/v1/jobs/j1", nil).want(t, http.StatusOK).decode(t, &got)
		if got.ID != "j1" {
			t.Fatalf("job %+v", got)
		}
		e.do(t, http.MethodGet, "/v1/jobs/nope", nil).wantError(t, http.StatusNotFound, "NotFound")
	})
	t.Run("cancel", func(t *testing.T) {
		var got api.Job
		e.do(t, http.MethodPost, "/v1/jobs/j1/cancel", nil).want(t, http.StatusOK).decode(t, &got)
		if got.State != api.JobCanceled {
			t.Fatalf("job %+v", got)
		}
		e.do(t, http.MethodPost, "/v1/jobs/nope/cancel", nil).wantError(t, http.StatusNotFound, "NotFound")
	})
}
