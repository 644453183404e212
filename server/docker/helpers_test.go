package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider"
	"github.com/containerprovider/containerprovider/server/listener"
)

// fakeBackend is a Backend whose methods run the functions a test sets and
// record their calls. A method without a function answers an empty list
// or config, or NotFound.
type fakeBackend struct {
	mu    sync.Mutex
	calls []string

	findFn       func(ctx context.Context, opts provider.FindOptions) ([]api.FindEntry, error)
	installFn    func(ctx context.Context, req api.InstallRequest) (api.Job, error)
	watchFn      func(ctx context.Context, id string) (<-chan api.JobEvent, error)
	imagesFn     func(ctx context.Context, opts provider.GetOptions) ([]api.Image, error)
	removeFn     func(ctx context.Context, opts provider.RemoveOptions) (api.RemoveResult, error)
	containersFn func(ctx context.Context) ([]api.Container, error)
	tagFn        func(ctx context.Context, image, repo, tag string) error
	untagFn      func(ctx context.Context, repo, tag string) (bool, error)
	configFn     func(ctx context.Context, ref string) (ocispec.Image, error)
	createFn     func(ctx context.Context, req api.ContainerCreateRequest) (api.Container, error)
	stateFn      func(ctx context.Context, ref, state string) (api.Container, error)
	rmContainer  func(ctx context.Context, ref string, force bool) error
	commitFn     func(ctx context.Context, req api.CommitRequest) (api.Image, error)
	saveFn       func(ctx context.Context, req api.SaveRequest, w io.Writer) (api.Image, error)
	loadFn       func(ctx context.Context, r io.Reader) (api.LoadResult, error)
	statFn       func(ctx context.Context, ref, path string) (fs.FileInfo, error)
	copyFn       func(ctx context.Context, ref, dest string, r io.Reader) error
	untagUsedFn  func(ctx context.Context, image string) ([]string, error)
	restoreFn    func(ctx context.Context, image string) ([]string, error)
}

func (f *fakeBackend) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeBackend) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeBackend) Find(ctx context.Context, opts provider.FindOptions) (api.FindResponse, error) {
	f.record("Find " + opts.Name)
	if f.findFn == nil {
		return api.FindResponse{}, nil
	}
	entries, err := f.findFn(ctx, opts)
	return api.FindResponse{Images: entries}, err
}

func (f *fakeBackend) Install(ctx context.Context, req api.InstallRequest) (api.Job, error) {
	f.record(fmt.Sprintf("Install %s %s", req.Name, req.RequiredVersion))
	if f.installFn == nil {
		return api.Job{}, fmt.Errorf("image %s: %w", req.Name, errdefs.ErrNotFound)
	}
	return f.installFn(ctx, req)
}

func (f *fakeBackend) Watch(ctx context.Context, id string) (<-chan api.JobEvent, error) {
	f.record("Watch " + id)
	if f.watchFn == nil {
		return nil, fmt.Errorf("job %s: %w", id, errdefs.ErrNotFound)
	}
	return f.watchFn(ctx, id)
}

func (f *fakeBackend) Images(ctx context.Context, opts provider.GetOptions) ([]api.Image, error) {
	f.record("Images")
	if f.imagesFn == nil {
		return []api.Image{}, nil
	}
	return f.imagesFn(ctx, opts)
}

func (f *fakeBackend) Remove(ctx context.Context, opts provider.RemoveOptions) (api.RemoveResult, error) {
	f.record("Remove " + opts.ID)
	if f.removeFn == nil {
		return api.RemoveResult{}, fmt.Errorf("image %s: %w", opts.ID, errdefs.ErrNotFound)
	}
	return f.removeFn(ctx, opts)
}

func (f *fakeBackend) Containers(ctx context.Context) ([]api.Container, error) {
	f.record("Containers")
	if f.containersFn == nil {
		return []api.Container{}, nil
	}
	return f.containersFn(ctx)
}

// Container resolves ref among the containers of containersFn as the
// provider does: an id, a name, or a unique id prefix of at least
// provider.MinIDPrefix hex.
func (f *fakeBackend) Container(ctx context.Context, ref string) (api.Container, error) {
	f.record("Container " + ref)
	var ctrs []api.Container
	if f.containersFn != nil {
		var err error
		if ctrs, err = f.containersFn(ctx); err != nil {
			return api.Container{}, err
		}
	}
	var hits []api.Container
	for _, c := range ctrs {
		if c.ID == ref || c.Name == ref {
			return c, nil
		}
		if len(ref) >= provider.MinIDPrefix && strings.HasPrefix(c.ID, ref) {
			hits = append(hits, c)
		}
	}
	switch len(hits) {
	case 0:
		return api.Container{}, fmt.Errorf("container %q: %w", ref, errdefs.ErrNotFound)
	case 1:
		return hits[0], nil
	}
	return api.Container{}, fmt.Errorf("container id prefix %q is ambiguous: %w", ref, errdefs.ErrInvalidArgument)
}

func (f *fakeBackend) StatContainerPath(ctx context.Context, ref, path string) (fs.FileInfo, error) {
	f.record(fmt.Sprintf("StatContainerPath %s %s", ref, path))
	if f.statFn == nil {
		return nil, fmt.Errorf("path %s: %w", path, errdefs.ErrNotFound)
	}
	return f.statFn(ctx, ref, path)
}

func (f *fakeBackend) CopyToContainer(ctx context.Context, ref, dest string, r io.Reader) error {
	f.record(fmt.Sprintf("CopyToContainer %s %s", ref, dest))
	if f.copyFn == nil {
		return fmt.Errorf("container %s: %w", ref, errdefs.ErrNotFound)
	}
	return f.copyFn(ctx, ref, dest, r)
}

func (f *fakeBackend) UntagUsedImage(ctx context.Context, image string) ([]string, error) {
	f.record("UntagUsedImage " + image)
	if f.untagUsedFn == nil {
		return nil, fmt.Errorf("image %s: %w", image, errdefs.ErrFailedPrecondition)
	}
	return f.untagUsedFn(ctx, image)
}

func (f *fakeBackend) RestoreImageRefs(ctx context.Context, image string) ([]string, error) {
	f.record("RestoreImageRefs " + image)
	if f.restoreFn == nil {
		return nil, nil
	}
	return f.restoreFn(ctx, image)
}

func (f *fakeBackend) Tag(ctx context.Context, image, repo, tag string) error {
	f.record(fmt.Sprintf("Tag %s %s:%s", image, repo, tag))
	if f.tagFn == nil {
		return fmt.Errorf("image %s: %w", image, errdefs.ErrNotFound)
	}
	return f.tagFn(ctx, image, repo, tag)
}

func (f *fakeBackend) Untag(ctx context.Context, repo, tag string) (bool, error) {
	f.record(fmt.Sprintf("Untag %s:%s", repo, tag))
	if f.untagFn == nil {
		return false, fmt.Errorf("ref %s:%s: %w", repo, tag, errdefs.ErrNotFound)
	}
	return f.untagFn(ctx, repo, tag)
}

func (f *fakeBackend) ImageConfig(ctx context.Context, ref string) (ocispec.Image, error) {
	f.record("ImageConfig " + ref)
	if f.configFn == nil {
		return ocispec.Image{}, nil
	}
	return f.configFn(ctx, ref)
}

func (f *fakeBackend) CreateContainer(ctx context.Context, req api.ContainerCreateRequest) (api.Container, error) {
	f.record(fmt.Sprintf("CreateContainer %s %s", req.Image, req.Name))
	if f.createFn == nil {
		return api.Container{}, fmt.Errorf("image %s: %w", req.Image, errdefs.ErrNotFound)
	}
	return f.createFn(ctx, req)
}

func (f *fakeBackend) StartContainer(ctx context.Context, ref string) (api.Container, error) {
	return f.setState(ctx, ref, api.ContainerRunning)
}

func (f *fakeBackend) StopContainer(ctx context.Context, ref string) (api.Container, error) {
	return f.setState(ctx, ref, api.ContainerStopped)
}

func (f *fakeBackend) setState(ctx context.Context, ref, state string) (api.Container, error) {
	f.record(fmt.Sprintf("SetState %s %s", ref, state))
	if f.stateFn == nil {
		return api.Container{}, fmt.Errorf("container %s: %w", ref, errdefs.ErrNotFound)
	}
	return f.stateFn(ctx, ref, state)
}

func (f *fakeBackend) RemoveContainer(ctx context.Context, ref string, force bool) error {
	f.record(fmt.Sprintf("RemoveContainer %s %v", ref, force))
	if f.rmContainer == nil {
		return fmt.Errorf("container %s: %w", ref, errdefs.ErrNotFound)
	}
	return f.rmContainer(ctx, ref, force)
}

func (f *fakeBackend) Commit(ctx context.Context, req api.CommitRequest) (api.Image, error) {
	f.record(fmt.Sprintf("Commit %s %s %s %s", req.Container, req.Name, req.Version, req.Publisher))
	if f.commitFn == nil {
		return api.Image{}, fmt.Errorf("container %s: %w", req.Container, errdefs.ErrNotFound)
	}
	return f.commitFn(ctx, req)
}

func (f *fakeBackend) Save(ctx context.Context, req api.SaveRequest, w io.Writer) (api.Image, error) {
	f.record(fmt.Sprintf("Save %s %s", req.Name, req.ID))
	if f.saveFn == nil {
		return api.Image{}, fmt.Errorf("image %s: %w", req.ID, errdefs.ErrNotFound)
	}
	return f.saveFn(ctx, req, w)
}

func (f *fakeBackend) Load(ctx context.Context, r io.Reader) (api.LoadResult, error) {
	f.record("Load")
	if f.loadFn == nil {
		return api.LoadResult{}, fmt.Errorf("archive: %w", errdefs.ErrInvalidArgument)
	}
	return f.loadFn(ctx, r)
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// testEnv is a Server over a fake, on a loopback httptest server.
type testEnv struct {
	s    *Server
	fake *fakeBackend
	url  string
}

func newTestEnv(t *testing.T, fake *fakeBackend, opts ...Opt) *testEnv {
	t.Helper()
	s, err := New(fake, append([]Opt{WithLogger(quietLogger()), WithVersion("1.2.3"), WithRoot("/var/lib/providerd"), WithPolicy(listener.Open())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	t.Cleanup(s.StopStreams)
	return &testEnv{s: s, fake: fake, url: srv.URL}
}

// response is a response with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (e *testEnv) do(t *testing.T, method, path string, header ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// decode decodes the body into v after checking the status is 200.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

// wantError checks the status and that the body is {"message": ...}
// holding msg.
func (r response) wantError(t *testing.T, status int, msg string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var e map[string]string
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if len(e) != 1 || !strings.Contains(e["message"], msg) {
		t.Fatalf("body %s, want a message holding %q", r.body, msg)
	}
}

var (
	created1 = time.Date(2015, 11, 19, 0, 0, 0, 0, time.UTC)
	created2 = time.Date(2016, 10, 1, 0, 0, 0, 0, time.UTC)
)

func hex64(c byte) string { return strings.Repeat(string(c), 64) }

// sampleImages are NanoServer 10.0.10586.0, WindowsServerCore 10.0.14393.0
// and microsoft/iis 1.0.0.0 on it.
func sampleImages() []api.Image {
	wsc := api.Image{
		Name: "WindowsServerCore", Repository: "windowsservercore", Version: "10.0.14393.0",
		Publisher: "CN=Microsoft", IsOSImage: true, Size: 1000, Created: created2,
		Digest: "sha256:" + hex64('b'), ID: hex64('b'), OSVersion: "10.0.14393.0",
		Refs: []string{"windowsservercore:10.0.14393.0", "windowsservercore:latest"},
	}
	return []api.Image{
		{
			Name: "NanoServer", Repository: "nanoserver", Version: "10.0.10586.0",
			Publisher: "CN=Microsoft", IsOSImage: true, Size: 500, Created: created1,
			Digest: "sha256:" + hex64('a'), ID: hex64('a'), OSVersion: "10.0.10586.0",
			Description: "Container OS Image of Windows Server 2016 Technical Preview 4 : Nano Server",
			Refs:        []string{"nanoserver:10.0.10586.0", "nanoserver:latest"},
		},
		wsc,
		{
			Name: "microsoft/iis", Repository: "microsoft/iis", Version: "1.0.0.0",
			Publisher: "CN=Microsoft", Size: 1200, Created: created2.Add(time.Hour),
			Digest: "sha256:" + hex64('c'), ID: hex64('c'), OSVersion: "10.0.14393.0",
			Description: "Internet Information Services (IIS)",
			ParentImage: &api.ParentRef{Name: "WindowsServerCore", Version: "10.0.14393.0", Digest: wsc.Digest},
			Refs:        []string{"microsoft/iis:1.0.0.0", "microsoft/iis:latest"},
		},
	}
}

func withImages(f *fakeBackend, imgs []api.Image) *fakeBackend {
	f.imagesFn = func(context.Context, provider.GetOptions) ([]api.Image, error) { return imgs, nil }
	return f
}
