package provider

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

// containerBackend is a fake with one container store: web1 on NanoServer.
type containerBackend struct {
	mu     sync.Mutex
	byRef  map[string]*api.Container
	copied map[string]string // "ref dest" -> the tar's bytes
}

func newContainerBackend() (*containerBackend, *fakeBackend) {
	web1 := &api.Container{ID: strings.Repeat("0c", 32), Name: "web1", Image: "NanoServer 10.0.10586.0",
		ImageDigest: nano.Digest, ParentImageName: "NanoServer", State: api.ContainerCreated,
		Created: time.Unix(1700000000, 0).UTC()}
	cb := &containerBackend{byRef: map[string]*api.Container{"web1": web1, web1.ID[:12]: web1, web1.ID: web1}, copied: map[string]string{}}
	get := func(ref string) (*api.Container, error) {
		c, ok := cb.byRef[ref]
		if !ok {
			return nil, notFound("container " + ref)
		}
		return c, nil
	}
	setState := func(state string) func(context.Context, string) (api.Container, error) {
		return func(_ context.Context, ref string) (api.Container, error) {
			cb.mu.Lock()
			defer cb.mu.Unlock()
			c, err := get(ref)
			if err != nil {
				return api.Container{}, err
			}
			c.State = state
			return *c, nil
		}
	}
	return cb, &fakeBackend{
		createContainer: func(_ context.Context, req api.ContainerCreateRequest) (api.Container, error) {
			cb.mu.Lock()
			defer cb.mu.Unlock()
			if req.Image != "NanoServer" {
				return api.Container{}, notFound("image " + req.Image)
			}
			if _, ok := cb.byRef[req.Name]; ok {
				return api.Container{}, fmt.Errorf("container name %q: %w", req.Name, errdefs.ErrAlreadyExists)
			}
			c := &api.Container{ID: strings.Repeat("1d", 32), Name: req.Name, Image: "NanoServer 10.0.10586.0", State: api.ContainerCreated}
			cb.byRef[c.Name], cb.byRef[c.ID] = c, c
			return *c, nil
		},
		containers: func(context.Context) ([]api.Container, error) {
			cb.mu.Lock()
			defer cb.mu.Unlock()
			return []api.Container{*web1}, nil
		},
		container: func(_ context.Context, ref string) (api.Container, error) {
			cb.mu.Lock()
			defer cb.mu.Unlock()
			c, err := get(ref)
			if err != nil {
				return api.Container{}, err
			}
			return *c, nil
		},
		startContainer: setState(api.ContainerRunning),
		stopContainer:  setState(api.ContainerStopped),
		copyTo: func(_ context.Context, ref, dest string, r io.Reader) error {
			data, err := io.ReadAll(r)
			if err != nil {
				return fmt.Errorf("reading the tar: %w", err)
			}
			cb.mu.Lock()
			defer cb.mu.Unlock()
			if _, err := get(ref); err != nil {
				return err
			}
			if strings.Contains(string(data), "../") {
				return fmt.Errorf("tar entry ../x: escapes %s: %w", dest, errdefs.ErrInvalidArgument)
			}
			cb.copied[ref+" "+dest] = string(data)
			return nil
		},
		removeContainer: func(_ context.Context, ref string, force bool) error {
			cb.mu.Lock()
			defer cb.mu.Unlock()
			c, err := get(ref)
			if err != nil {
				return err
			}
			if c.State == api.ContainerRunning && !force {
				return fmt.Errorf("container %s is running; stop it or force: %w", c.Name, errdefs.ErrConflict)
			}
			delete(cb.byRef, c.Name)
			delete(cb.byRef, c.ID)
			delete(cb.byRef, c.ID[:12])
			return nil
		},
		commit: func(_ context.Context, req api.CommitRequest) (api.Image, error) {
			if req.Name == "NanoServer" && !req.Force {
				return api.Image{}, fmt.Errorf("image NanoServer 1.0.0.0: %w", errdefs.ErrAlreadyExists)
			}
			return api.Image{Name: req.Name, Version: "1.0.0.0", Publisher: "CN=" + req.Publisher,
				ParentImage: &api.ParentRef{Name: "NanoServer", Version: "10.0.10586.0"}}, nil
		},
	}
}

func TestContainers(t *testing.T) {
	cb, fake := newContainerBackend()
	e := newTestEnv(t, fake)

	t.Run("empty list is an empty array", func(t *testing.T) {
		empty := newTestEnv(t, &fakeBackend{})
		resp := empty.do(t, http.MethodGet, "/v1/containers", nil).want(t, http.StatusOK)
		if strings.TrimSpace(string(resp.body)) != `{"containers":[]}` {
			t.Fatalf("body %s", resp.body)
		}
	})
	t.Run("list", func(t *testing.T) {
		var got containersResponse
		e.do(t, http.MethodGet, "/v1/containers", nil).want(t, http.StatusOK).decode(t, &got)
		if len(got.Containers) != 1 || got.Containers[0].Name != "web1" || got.Containers[0].ParentImageName != "NanoServer" {
			t.Fatalf("containers %+v", got)
		}
	})
	t.Run("create", func(t *testing.T) {
		var c api.Container
		resp := e.do(t, http.MethodPost, "/v1/containers", api.ContainerCreateRequest{Image: "NanoServer", Name: "demo"}).want(t, http.StatusCreated)
		resp.decode(t, &c)
		if c.Name != "demo" || c.State != api.ContainerCreated {
			t.Fatalf("container %+v", c)
		}
		if loc := resp.Header.Get("Location"); loc != "/v1/containers/"+c.ID {
			t.Fatalf("Location %q", loc)
		}
		e.do(t, http.MethodPost, "/v1/containers", api.ContainerCreateRequest{Image: "NanoServer", Name: "demo"}).wantError(t, http.StatusConflict, "AlreadyExists")
		e.do(t, http.MethodPost, "/v1/containers", api.ContainerCreateRequest{Image: "Nope"}).wantError(t, http.StatusNotFound, "NotFound")
		e.do(t, http.MethodPost, "/v1/containers", `{"image":"NanoServer","cmd":["sh"]}`).wantError(t, http.StatusBadRequest, "InvalidArgument")
	})
	t.Run("get by name and id prefix", func(t *testing.T) {
		for _, ref := range []string{"web1", strings.Repeat("0c", 6)} {
			var c api.Container
			e.do(t, http.MethodGet, "/v1/containers/"+ref, nil).want(t, http.StatusOK).decode(t, &c)
			if c.Name != "web1" {
				t.Fatalf("%s: %+v", ref, c)
			}
		}
		e.do(t, http.MethodGet, "/v1/containers/nope", nil).wantError(t, http.StatusNotFound, "NotFound")
	})
	t.Run("start and stop", func(t *testing.T) {
		var c api.Container
		e.do(t, http.MethodPost, "/v1/containers/web1/start", nil).want(t, http.StatusOK).decode(t, &c)
		if c.State != api.ContainerRunning {
			t.Fatalf("after start: %+v", c)
		}
		e.do(t, http.MethodDelete, "/v1/containers/web1", nil).wantError(t, http.StatusConflict, "Conflict")
		e.do(t, http.MethodPost, "/v1/containers/web1/stop", nil).want(t, http.StatusOK).decode(t, &c)
		if c.State != api.ContainerStopped {
			t.Fatalf("after stop: %+v", c)
		}
		e.do(t, http.MethodPost, "/v1/containers/nope/start", nil).wantError(t, http.StatusNotFound, "NotFound")
		e.do(t, http.MethodPost, "/v1/containers/web1/start?detach=1", nil).wantError(t, http.StatusBadRequest, "InvalidArgument")
	})
	t.Run("copy a tar in", func(t *testing.T) {
		resp := e.postTar(t, http.MethodPut, "/v1/containers/web1/archive?path=/app", strings.NewReader("tar bytes"), ContentTypeTar)
		resp.want(t, http.StatusNoContent)
		if got := cb.copied["web1 /app"]; got != "tar bytes" {
			t.Fatalf("copied %q", got)
		}
		e.postTar(t, http.MethodPut, "/v1/containers/web1/archive?path=/app", strings.NewReader("../x"), ContentTypeTar).wantError(t, http.StatusBadRequest, "InvalidArgument")
		e.postTar(t, http.MethodPut, "/v1/containers/nope/archive?path=/app", strings.NewReader("tar"), ContentTypeTar).wantError(t, http.StatusNotFound, "NotFound")
	})
	for _, tc := range []struct {
		name, query, contentType, body string
	}{
		{"no path", "", ContentTypeTar, "tar"},
		{"empty path", "?path=", ContentTypeTar, "tar"},
		{"not a tar", "?path=/app", "application/json", "{}"},
		{"empty body", "?path=/app", ContentTypeTar, ""},
		{"unknown parameter", "?path=/app&noOverwriteDirNonDir=1", ContentTypeTar, "tar"},
	} {
		t.Run("copy refuses "+tc.name, func(t *testing.T) {
			before := len(e.fake.called())
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			e.postTar(t, http.MethodPut, "/v1/containers/web1/archive"+tc.query, body, tc.contentType).wantError(t, http.StatusBadRequest, "InvalidArgument")
			if calls := e.fake.called(); len(calls) != before {
				t.Fatalf("backend called: %v", calls[before:])
			}
		})
	}
	t.Run("remove", func(t *testing.T) {
		e.do(t, http.MethodDelete, "/v1/containers/web1?force=sometimes", nil).wantError(t, http.StatusBadRequest, "InvalidArgument")
		e.do(t, http.MethodPost, "/v1/containers/web1/start", nil).want(t, http.StatusOK)
		e.do(t, http.MethodDelete, "/v1/containers/web1?force=true", nil).want(t, http.StatusNoContent)
		e.do(t, http.MethodGet, "/v1/containers/web1", nil).wantError(t, http.StatusNotFound, "NotFound")
		e.do(t, http.MethodDelete, "/v1/containers/demo?force=false", nil).want(t, http.StatusNoContent)
		calls := e.fake.called()
		if !contains(calls, "RemoveContainer web1 force=true") || !contains(calls, "RemoveContainer demo force=false") {
			t.Fatalf("calls %v", calls)
		}
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestCommit(t *testing.T) {
	_, fake := newContainerBackend()
	var got []api.CommitRequest
	commit := fake.commit
	fake.commit = func(ctx context.Context, req api.CommitRequest) (api.Image, error) {
		got = append(got, req)
		return commit(ctx, req)
	}
	e := newTestEnv(t, fake)
	req := api.CommitRequest{Container: "web1", Name: "DemoImage", Publisher: "Demo", Version: "1.0", Description: "demo"}
	var img api.Image
	e.do(t, http.MethodPost, "/v1/images/commit", req).want(t, http.StatusCreated).decode(t, &img)
	if img.Name != "DemoImage" || img.Publisher != "CN=Demo" || img.ParentImage == nil || img.ParentImage.Name != "NanoServer" {
		t.Fatalf("image %+v", img)
	}
	if len(got) != 1 || got[0] != req {
		t.Fatalf("backend got %+v", got)
	}
	e.do(t, http.MethodPost, "/v1/images/commit", api.CommitRequest{Container: "web1", Name: "NanoServer", Publisher: "Demo", Version: "1.0"}).
		wantError(t, http.StatusConflict, "AlreadyExists")
	e.do(t, http.MethodPost, "/v1/images/commit", api.CommitRequest{Container: "web1", Name: "NanoServer", Publisher: "Demo", Version: "1.0", Force: true}).
		want(t, http.StatusCreated)
	e.do(t, http.MethodPost, "/v1/images/commit", `{"container":"web1","tag":"x"}`).wantError(t, http.StatusBadRequest, "InvalidArgument")
	e.do(t, http.MethodPost, "/v1/images/commit?force=true", req).wantError(t, http.StatusBadRequest, "InvalidArgument")
	e.do(t, http.MethodPost, "/v1/images/commit", strings.Repeat(" ", MaxBodySize+1)+"{}").wantError(t, http.StatusRequestEntityTooLarge, "TooLarge")
}
