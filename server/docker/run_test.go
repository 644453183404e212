package docker

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

// containerFake is a fake backend whose containers are created, started,
// stopped and removed for real, in a list.
type containerFake struct {
	*fakeBackend
	mu   sync.Mutex
	ctrs []api.Container
	n    int
}

func newContainerFake() *containerFake {
	cf := &containerFake{fakeBackend: withImages(&fakeBackend{}, sampleImages())}
	cf.containersFn = func(context.Context) ([]api.Container, error) {
		cf.mu.Lock()
		defer cf.mu.Unlock()
		return slices.Clone(cf.ctrs), nil
	}
	cf.createFn = func(_ context.Context, req api.ContainerCreateRequest) (api.Container, error) {
		cf.mu.Lock()
		defer cf.mu.Unlock()
		cf.n++
		name := req.Name
		if name == "" {
			name = fmt.Sprintf("gen%d", cf.n)
		}
		c := api.Container{ID: fmt.Sprintf("%04d", cf.n) + hex64('e')[4:], Name: name, ImageDigest: req.Image,
			State: api.ContainerCreated, Created: created2}
		cf.ctrs = append(cf.ctrs, c)
		return c, nil
	}
	cf.stateFn = func(_ context.Context, ref, state string) (api.Container, error) {
		cf.mu.Lock()
		defer cf.mu.Unlock()
		for i := range cf.ctrs {
			if cf.ctrs[i].ID == ref {
				cf.ctrs[i].State = state
				cf.ctrs[i].StateChanged = created2.Add(time.Hour)
				return cf.ctrs[i], nil
			}
		}
		return api.Container{}, fmt.Errorf("container %s: %w", ref, errdefs.ErrNotFound)
	}
	cf.rmContainer = func(_ context.Context, ref string, _ bool) error {
		cf.mu.Lock()
		defer cf.mu.Unlock()
		n := len(cf.ctrs)
		cf.ctrs = slices.DeleteFunc(cf.ctrs, func(c api.Container) bool { return c.ID == ref })
		if len(cf.ctrs) == n {
			return fmt.Errorf("container %s: %w", ref, errdefs.ErrNotFound)
		}
		return nil
	}
	return cf
}

func (cf *containerFake) names() []string {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	var out []string
	for _, c := range cf.ctrs {
		out = append(out, c.Name)
	}
	return out
}

func TestInspectContainer(t *testing.T) {
	cf := newContainerFake()
	e := newTestEnv(t, cf.fakeBackend)
	r := e.doBody(t, http.MethodPost, "/v1.51/containers/create?name=c1", `{"Image":"nanoserver:10.0.10586.0"}`)
	r.wantStatus(t, http.StatusCreated)
	id := cf.ctrs[0].ID

	for _, tc := range []struct {
		name, path, state string
		running           bool
		started, finished string
	}{
		{name: "created, by name", path: "/v1.51/containers/c1/json", state: "created", started: zeroTime, finished: zeroTime},
		{name: "running, by prefix", path: "/containers/" + id[:4] + "/json", state: "running", running: true, started: "2016-10-01T01:00:00Z", finished: zeroTime},
		{name: "exited, by id", path: "/containers/" + id + "/json", state: "exited", started: zeroTime, finished: "2016-10-01T01:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			switch tc.state {
			case "running":
				e.do(t, http.MethodPost, "/containers/c1/start").wantStatus(t, http.StatusNoContent)
			case "exited":
				e.do(t, http.MethodPost, "/containers/c1/stop").wantStatus(t, http.StatusNoContent)
			}
			var got containerInspect
			e.do(t, http.MethodGet, tc.path).decode(t, &got)
			if got.ID != id || got.Name != "/c1" || got.Image != "sha256:"+hex64('a') || got.Config.Image != "nanoserver:10.0.10586.0" ||
				got.Created != "2016-10-01T00:00:00Z" || got.Platform != "windows" || got.Args == nil || got.Mounts == nil {
				t.Fatalf("inspect %+v", got)
			}
			if got.State.Status != tc.state || got.State.Running != tc.running || got.State.StartedAt != tc.started ||
				got.State.FinishedAt != tc.finished || got.State.ExitCode != 0 {
				t.Fatalf("state %+v", got.State)
			}
		})
	}
	e.do(t, http.MethodGet, "/containers/nothere/json").wantError(t, http.StatusNotFound, "No such container: nothere")
	cf.mu.Lock()
	cf.ctrs = append(cf.ctrs, api.Container{ID: id[:4] + hex64('f')[4:], Name: "twin", ImageDigest: "sha256:" + hex64('a'), State: api.ContainerCreated})
	cf.mu.Unlock()
	e.do(t, http.MethodGet, "/containers/"+id[:4]+"/json").wantError(t, http.StatusBadRequest, "multiple IDs found with provided prefix: "+id[:4])
	e.do(t, http.MethodGet, "/containers/"+id[:3]+"/json").wantError(t, http.StatusNotFound, "No such container: "+id[:3])
}

// TestDockerRunRemovesItsContainer checks the attach that follows a
// docker run's create: it removes the container; other attaches do not.
func TestDockerRunRemovesItsContainer(t *testing.T) {
	cf := newContainerFake()
	e := newTestEnv(t, cf.fakeBackend)
	create := func(name string) {
		t.Helper()
		e.doBody(t, http.MethodPost, "/v1.51/containers/create?name="+name, `{"Image":"nanoserver:latest","AttachStdout":true}`).wantStatus(t, http.StatusCreated)
	}

	// docker run: create, then attach at once.
	create("r1")
	e.do(t, http.MethodPost, "/v1.51/containers/r1/attach?stream=1&stdout=1&stderr=1").
		wantError(t, http.StatusNotImplemented, "docker run is not supported by providerd: its containers run no process, so the container r1 that the run created was removed")
	if got := cf.names(); len(got) != 0 {
		t.Fatalf("containers after the run: %q", got)
	}

	// docker create, then docker start -a: it inspects first.
	create("c1")
	var insp containerInspect
	e.do(t, http.MethodGet, "/v1.51/containers/c1/json").decode(t, &insp)
	e.do(t, http.MethodPost, "/v1.51/containers/c1/attach?stream=1&stdout=1").
		wantError(t, http.StatusNotImplemented, "attaching to container c1 is not supported by providerd")
	// A container named by any call (start, here) is not fresh either.
	create("c2")
	e.do(t, http.MethodPost, "/containers/c2/start").wantStatus(t, http.StatusNoContent)
	e.do(t, http.MethodPost, "/containers/c2/attach").wantError(t, http.StatusNotImplemented, "attaching to container c2")
	// A second attach of a run's container that was kept (a failed
	// removal) is an attach like any other.
	create("c3")
	rm := cf.rmContainer
	cf.rmContainer = func(context.Context, string, bool) error { return fmt.Errorf("disk: %w", errdefs.ErrUnavailable) }
	e.do(t, http.MethodPost, "/containers/c3/attach").wantError(t, http.StatusNotImplemented, "the container c3 that the run created is left as it is")
	cf.rmContainer = rm
	e.do(t, http.MethodPost, "/containers/c3/attach").wantError(t, http.StatusNotImplemented, "attaching to container c3")
	if got := cf.names(); !slices.Equal(got, []string{"c1", "c2", "c3"}) {
		t.Fatalf("containers: %q", got)
	}
	e.do(t, http.MethodPost, "/containers/nothere/attach").wantError(t, http.StatusNotFound, "No such container: nothere")
	for _, c := range cf.called() {
		if strings.HasPrefix(c, "RemoveContainer ") && !strings.HasPrefix(c, "RemoveContainer 0001") && !strings.HasPrefix(c, "RemoveContainer 0004") {
			t.Errorf("removed a container that no run created: %s", c)
		}
	}
}

func TestFreshContainers(t *testing.T) {
	var f freshContainers
	f.add("a")
	f.add("b")
	f.forget("b")
	if !f.take("a") || f.take("a") || f.take("b") {
		t.Fatal("take after add, take twice, take after forget")
	}
	// Past the window, a container is no longer fresh.
	f.add("old")
	f.mu.Lock()
	f.ids["old"] = time.Now().Add(-2 * freshWindow)
	f.mu.Unlock()
	if f.take("old") {
		t.Fatal("a container created two windows ago is fresh")
	}
	// At most maxFresh are kept: the oldest goes.
	for i := range maxFresh + 10 {
		f.add(fmt.Sprint(i))
	}
	f.mu.Lock()
	n := len(f.ids)
	f.mu.Unlock()
	if n > maxFresh {
		t.Fatalf("%d fresh containers kept, at most %d", n, maxFresh)
	}
	if !f.take(fmt.Sprint(maxFresh + 9)) {
		t.Fatal("the newest container is not fresh")
	}
}
