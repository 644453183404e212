package docker

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
	engine "github.com/containerprovider/containerprovider/provider"
)

// doBody is do with a JSON body.
func (e *testEnv) doBody(t *testing.T, method, path, body string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: bytes.TrimSpace(b)}
}

// wantStatus checks a response's status.
func (r response) wantStatus(t *testing.T, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
}

// TestContainersAgainstTheEngine runs docker create (which installs the
// image first), ps, start, stop, tag, rmi of a tag, commit, history and rm
// over the real provider.
func TestContainersAgainstTheEngine(t *testing.T) {
	e, p, _ := newEngineEnv(t)
	ctx := t.Context()

	// The image is not installed: create installs it, then creates.
	var created createResponse
	r := e.doBody(t, http.MethodPost, "/v1.51/containers/create?name=c1", `{"Image":"nanoserver:10.0.10586.0","Cmd":["cmd"]}`)
	r.wantStatus(t, http.StatusCreated)
	r.status = http.StatusOK
	r.decode(t, &created)
	if len(created.ID) != 64 || created.Warnings == nil {
		t.Fatalf("create %+v", created)
	}
	e.doBody(t, http.MethodPost, "/containers/create?name=c1", `{"Image":"nanoserver:10.0.10586.0"}`).wantError(t, http.StatusConflict, `The container name "/c1" is already in use`)
	e.doBody(t, http.MethodPost, "/containers/create", `{"Image":"nothing:1.0"}`).wantError(t, http.StatusNotFound, "")
	e.doBody(t, http.MethodPost, "/containers/create", `{}`).wantError(t, http.StatusBadRequest, "config cannot be empty")

	var ps []containerSummary
	e.do(t, http.MethodGet, "/containers/json").decode(t, &ps)
	if len(ps) != 0 {
		t.Fatalf("ps without all lists a created container: %+v", ps)
	}
	e.do(t, http.MethodGet, "/containers/json?all=1").decode(t, &ps)
	if len(ps) != 1 || ps[0].ID != created.ID || !slices.Equal(ps[0].Names, []string{"/c1"}) ||
		ps[0].Image != "nanoserver:10.0.10586.0" || !strings.HasPrefix(ps[0].ImageID, "sha256:") ||
		ps[0].State != "created" || ps[0].Status != "Created" || ps[0].Command != "" {
		t.Fatalf("ps -a %+v", ps)
	}

	for _, tc := range []struct {
		name, path string
		status     int
		state      string
	}{
		{"stop of a created container", "/containers/c1/stop", http.StatusNotModified, "created"},
		{"start", "/v1.51/containers/c1/start", http.StatusNoContent, "running"},
		{"start again", "/containers/" + created.ID[:8] + "/start", http.StatusNotModified, "running"},
		{"stop", "/containers/" + created.ID + "/stop", http.StatusNoContent, "exited"},
		{"stop again", "/containers/c1/stop", http.StatusNotModified, "exited"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.do(t, http.MethodPost, tc.path).wantStatus(t, tc.status)
			var ps []containerSummary
			e.do(t, http.MethodGet, "/containers/json?all=true").decode(t, &ps)
			if len(ps) != 1 || ps[0].State != tc.state {
				t.Fatalf("ps -a %+v", ps)
			}
			// The state changed less than a second ago.
			want := map[string]string{"created": "Created", "running": "Up Less than a second", "exited": "Exited (0) Less than a second ago"}[tc.state]
			if ps[0].Status != want {
				t.Fatalf("STATUS %q, want %q", ps[0].Status, want)
			}
		})
	}
	e.do(t, http.MethodPost, "/containers/nothere/start").wantError(t, http.StatusNotFound, "No such container: nothere")

	// rmi of the container's image names c1.
	e.do(t, http.MethodDelete, "/images/nanoserver:10.0.10586.0").wantError(t, http.StatusConflict, "container c1 is using its referenced image")

	// docker tag, then rmi of that tag only untags.
	e.do(t, http.MethodPost, "/images/nanoserver:10.0.10586.0/tag?repo=docker.io/library/mynano&tag=v1").wantStatus(t, http.StatusCreated)
	e.do(t, http.MethodPost, "/images/nanoserver:10.0.10586.0/tag?repo=nanoserver&tag=latest").wantStatus(t, http.StatusCreated)
	var insp imageInspect
	e.do(t, http.MethodGet, "/images/mynano:v1/json").decode(t, &insp)
	if !slices.Contains(insp.RepoTags, "mynano:v1") || insp.Architecture == "" || len(insp.RootFS.Layers) != 1 {
		t.Fatalf("inspect %+v", insp)
	}
	var del []deleteItem
	e.do(t, http.MethodDelete, "/images/mynano:v1").decode(t, &del)
	if !slices.Equal(del, []deleteItem{{Untagged: "mynano:v1"}}) {
		t.Fatalf("rmi of a tag %+v", del)
	}

	// docker commit c1 demoimage:1.0, and demo2:test (version 1.0.0.0,
	// with the ref demo2:test).
	var id idResponse
	r = e.do(t, http.MethodPost, "/v1.51/commit?container=c1&repo=docker.io/library/demoimage&tag=1.0&comment=demo")
	r.wantStatus(t, http.StatusCreated)
	r.status = http.StatusOK
	r.decode(t, &id)
	imgs, err := p.Images(ctx, engine.GetOptions{Name: "demoimage"})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Digest != id.ID || imgs[0].Version != "1.0.0.0" || imgs[0].Publisher != "CN=Docker" ||
		imgs[0].ParentImage == nil || imgs[0].ParentImage.Name != "NanoServer" || imgs[0].Description != "demo" {
		t.Fatalf("committed %+v", imgs)
	}
	r = e.do(t, http.MethodPost, "/commit?container=c1&repo=demo2&tag=test&author=Demo")
	r.wantStatus(t, http.StatusCreated)
	e.do(t, http.MethodGet, "/images/demo2:test/json").decode(t, &insp)
	if insp.Author != "CN=Demo" || !slices.Contains(insp.RepoTags, "demo2:1.0.0.0") {
		t.Fatalf("demo2:test %+v", insp)
	}
	e.do(t, http.MethodPost, "/commit?container=c1").wantError(t, http.StatusBadRequest, "needs a repository name")

	var hist []historyItem
	e.do(t, http.MethodGet, "/images/demoimage:1.0.0.0/history").decode(t, &hist)
	if len(hist) != 2 || hist[0].ID != id.ID || !strings.Contains(hist[0].CreatedBy, "c1") || hist[1].CreatedBy == "" ||
		!slices.Contains(hist[1].Tags, "nanoserver:10.0.10586.0") {
		t.Fatalf("history %+v", hist)
	}

	e.do(t, http.MethodPost, "/containers/c1/start").wantStatus(t, http.StatusNoContent)
	e.do(t, http.MethodDelete, "/containers/c1").wantError(t, http.StatusConflict, `cannot remove container "/c1": container is running`)
	e.do(t, http.MethodDelete, "/containers/c1?force=1").wantStatus(t, http.StatusNoContent)
	e.do(t, http.MethodGet, "/containers/json?all=1").decode(t, &ps)
	if len(ps) != 0 {
		t.Fatalf("ps -a after rm %+v", ps)
	}
	if ctrs, _ := p.Containers(context.Background()); len(ctrs) != 0 {
		t.Fatalf("the provider still lists %+v", ctrs)
	}
}

// TestContainerStatus: the STATUS column in the daemon's words.
func TestContainerStatus(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		c    api.Container
		want string
	}{
		{api.Container{State: api.ContainerCreated}, "Created"},
		{api.Container{State: api.ContainerRunning, StateChanged: now.Add(-3 * time.Minute)}, "Up 3 minutes"},
		{api.Container{State: api.ContainerStopped, StateChanged: now.Add(-2 * time.Hour)}, "Exited (0) 2 hours ago"},
		// Records written before state times were kept.
		{api.Container{State: api.ContainerRunning}, "Up"},
		{api.Container{State: api.ContainerStopped}, "Exited (0)"},
	} {
		if got := containerStatus(tc.c, now); got != tc.want {
			t.Errorf("%s since %v: %q, want %q", tc.c.State, tc.c.StateChanged, got, tc.want)
		}
	}
}
