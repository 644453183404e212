package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"

	"os"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider"
	"github.com/containerprovider/containerprovider/provider/hostfs"
	"github.com/containerprovider/containerprovider/server/listener"
)

// fakeBackend is a Backend whose methods run the functions a test sets,
// and record their calls. A method without a function answers NotFound,
// or an empty list.
type fakeBackend struct {
	mu    sync.Mutex
	calls []string

	sources       func(ctx context.Context) ([]api.Source, error)
	addSource     func(ctx context.Context, s api.Source) (api.Source, error)
	refreshSource func(ctx context.Context, name string) (api.Source, error)
	removeSource  func(ctx context.Context, name string) error
	findFn        func(ctx context.Context, opts provider.FindOptions) ([]api.FindEntry, error)
	installFn     func(ctx context.Context, req api.InstallRequest) (api.Job, error)
	jobs          func(ctx context.Context) ([]api.Job, error)
	job           func(ctx context.Context, id string) (api.Job, error)
	watch         func(ctx context.Context, id string) (<-chan api.JobEvent, error)
	cancel        func(ctx context.Context, id string) (api.Job, error)
	images        func(ctx context.Context, opts provider.GetOptions) ([]api.Image, error)
	remove        func(ctx context.Context, opts provider.RemoveOptions) (api.RemoveResult, error)
	writeMetrics  func(w io.Writer) error

	save            func(ctx context.Context, req api.SaveRequest, w io.Writer) (api.Image, error)
	saveToPath      func(ctx context.Context, req api.SaveRequest, fsys hostfs.FS) (api.SaveResult, error)
	loadFile        func(ctx context.Context, f *os.File, label string) (api.LoadResult, error)
	load            func(ctx context.Context, r io.Reader) (api.LoadResult, error)
	commit          func(ctx context.Context, req api.CommitRequest) (api.Image, error)
	createContainer func(ctx context.Context, req api.ContainerCreateRequest) (api.Container, error)
	containers      func(ctx context.Context) ([]api.Container, error)
	container       func(ctx context.Context, ref string) (api.Container, error)
	startContainer  func(ctx context.Context, ref string) (api.Container, error)
	stopContainer   func(ctx context.Context, ref string) (api.Container, error)
	copyTo          func(ctx context.Context, ref, dest string, r io.Reader) error
	removeContainer func(ctx context.Context, ref string, force bool) error
}

func (f *fakeBackend) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

// called returns the calls made so far.
func (f *fakeBackend) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func notFound(what string) error { return fmt.Errorf("%s: %w", what, errdefs.ErrNotFound) }

func (f *fakeBackend) Sources(ctx context.Context) ([]api.Source, error) {
	f.record("Sources")
	if f.sources == nil {
		return nil, nil
	}
	return f.sources(ctx)
}

func (f *fakeBackend) AddSource(ctx context.Context, s api.Source) (api.Source, error) {
	f.record("AddSource " + s.Name)
	if f.addSource == nil {
		return s, nil
	}
	return f.addSource(ctx, s)
}

func (f *fakeBackend) RemoveSource(ctx context.Context, name string) error {
	f.record("RemoveSource " + name)
	if f.removeSource == nil {
		return notFound("source " + name)
	}
	return f.removeSource(ctx, name)
}

func (f *fakeBackend) Find(ctx context.Context, opts provider.FindOptions) (api.FindResponse, error) {
	f.record("Find")
	if f.findFn == nil {
		return api.FindResponse{}, nil
	}
	entries, err := f.findFn(ctx, opts)
	return api.FindResponse{Images: entries}, err
}

func (f *fakeBackend) RefreshSource(ctx context.Context, name string) (api.Source, error) {
	f.record("RefreshSource " + name)
	if f.refreshSource == nil {
		return api.Source{}, notFound("source " + name)
	}
	return f.refreshSource(ctx, name)
}

func (f *fakeBackend) Install(ctx context.Context, req api.InstallRequest) (api.Job, error) {
	f.record("Install " + req.Name)
	if f.installFn == nil {
		return api.Job{}, notFound("image " + req.Name)
	}
	return f.installFn(ctx, req)
}

func (f *fakeBackend) Jobs(ctx context.Context) ([]api.Job, error) {
	f.record("Jobs")
	if f.jobs == nil {
		return nil, nil
	}
	return f.jobs(ctx)
}

func (f *fakeBackend) Job(ctx context.Context, id string) (api.Job, error) {
	f.record("Job " + id)
	if f.job == nil {
		return api.Job{}, notFound("job " + id)
	}
	return f.job(ctx, id)
}

func (f *fakeBackend) Watch(ctx context.Context, id string) (<-chan api.JobEvent, error) {
	f.record("Watch " + id)
	if f.watch == nil {
		return nil, notFound("job " + id)
	}
	return f.watch(ctx, id)
}

func (f *fakeBackend) Cancel(ctx context.Context, id string) (api.Job, error) {
	f.record("Cancel " + id)
	if f.cancel == nil {
		return api.Job{}, notFound("job " + id)
	}
	return f.cancel(ctx, id)
}

func (f *fakeBackend) Images(ctx context.Context, opts provider.GetOptions) ([]api.Image, error) {
	f.record("Images")
	if f.images == nil {
		return nil, nil
	}
	return f.images(ctx, opts)
}

// ImagesPage pages the images of f.images with no option, n at a time;
// the cursor is the index of the next one.
func (f *fakeBackend) ImagesPage(ctx context.Context, after string, n int) (provider.ImagePage, error) {
	f.record("ImagesPage")
	if f.images == nil {
		return provider.ImagePage{}, nil
	}
	imgs, err := f.images(ctx, provider.GetOptions{})
	if err != nil {
		return provider.ImagePage{}, err
	}
	return pageOf(imgs, after, n)
}

// pageOf is the page of imgs after the cursor after (an index), n long.
func pageOf(imgs []api.Image, after string, n int) (provider.ImagePage, error) {
	i := 0
	if after != "" {
		var err error
		if i, err = strconv.Atoi(after); err != nil {
			return provider.ImagePage{}, err
		}
	}
	var page provider.ImagePage
	for ; i < len(imgs) && len(page.Images) < n; i++ {
		b, err := marshal(imgs[i]) // as the provider's listing view encodes it
		if err != nil {
			return provider.ImagePage{}, err
		}
		page.Images = append(page.Images, bytes.TrimSuffix(b, []byte("\n")))
	}
	if i < len(imgs) {
		page.Next = strconv.Itoa(i)
	}
	return page, nil
}

func (f *fakeBackend) Remove(ctx context.Context, opts provider.RemoveOptions) (api.RemoveResult, error) {
	f.record("Remove")
	if f.remove == nil {
		return api.RemoveResult{}, notFound("image " + opts.Name + opts.ID)
	}
	return f.remove(ctx, opts)
}

func (f *fakeBackend) WriteMetrics(w io.Writer) error {
	f.record("WriteMetrics")
	if f.writeMetrics == nil {
		return nil
	}
	return f.writeMetrics(w)
}

func (f *fakeBackend) Save(ctx context.Context, req api.SaveRequest, w io.Writer) (api.Image, error) {
	f.record("Save " + req.Name + req.ID)
	if f.save == nil {
		return api.Image{}, notFound("image " + req.Name + req.ID)
	}
	return f.save(ctx, req, w)
}

func (f *fakeBackend) SaveToPath(ctx context.Context, req api.SaveRequest, fsys hostfs.FS) (api.SaveResult, error) {
	f.record("SaveToPath " + req.Path)
	if f.saveToPath == nil {
		return api.SaveResult{}, notFound("image " + req.Name + req.ID)
	}
	return f.saveToPath(ctx, req, fsys)
}

func (f *fakeBackend) PlanSave(_ context.Context, req api.SaveRequest) (api.SaveResult, error) {
	f.record("PlanSave " + req.Name + req.ID)
	return api.SaveResult{WhatIf: true, Path: req.Path, Images: []string{req.Name}}, nil
}

func (f *fakeBackend) LoadFile(ctx context.Context, file *os.File, label string) (api.LoadResult, error) {
	f.record("LoadFile " + label)
	if f.loadFile == nil {
		return api.LoadResult{}, notFound("file " + label)
	}
	return f.loadFile(ctx, file, label)
}

func (f *fakeBackend) Load(ctx context.Context, r io.Reader) (api.LoadResult, error) {
	f.record("Load")
	if f.load == nil {
		_, err := io.Copy(io.Discard, r)
		return api.LoadResult{}, err
	}
	return f.load(ctx, r)
}

func (f *fakeBackend) Commit(ctx context.Context, req api.CommitRequest) (api.Image, error) {
	f.record("Commit " + req.Container)
	if f.commit == nil {
		return api.Image{}, notFound("container " + req.Container)
	}
	return f.commit(ctx, req)
}

func (f *fakeBackend) CreateContainer(ctx context.Context, req api.ContainerCreateRequest) (api.Container, error) {
	f.record("CreateContainer " + req.Image)
	if f.createContainer == nil {
		return api.Container{}, notFound("image " + req.Image)
	}
	return f.createContainer(ctx, req)
}

func (f *fakeBackend) Containers(ctx context.Context) ([]api.Container, error) {
	f.record("Containers")
	if f.containers == nil {
		return nil, nil
	}
	return f.containers(ctx)
}

func (f *fakeBackend) Container(ctx context.Context, ref string) (api.Container, error) {
	f.record("Container " + ref)
	if f.container == nil {
		return api.Container{}, notFound("container " + ref)
	}
	return f.container(ctx, ref)
}

func (f *fakeBackend) StartContainer(ctx context.Context, ref string) (api.Container, error) {
	f.record("StartContainer " + ref)
	if f.startContainer == nil {
		return api.Container{}, notFound("container " + ref)
	}
	return f.startContainer(ctx, ref)
}

func (f *fakeBackend) StopContainer(ctx context.Context, ref string) (api.Container, error) {
	f.record("StopContainer " + ref)
	if f.stopContainer == nil {
		return api.Container{}, notFound("container " + ref)
	}
	return f.stopContainer(ctx, ref)
}

func (f *fakeBackend) CopyToContainer(ctx context.Context, ref, dest string, r io.Reader) error {
	f.record("CopyToContainer " + ref + " " + dest)
	if f.copyTo == nil {
		return notFound("container " + ref)
	}
	return f.copyTo(ctx, ref, dest, r)
}

func (f *fakeBackend) RemoveContainer(ctx context.Context, ref string, force bool) error {
	f.record(fmt.Sprintf("RemoveContainer %s force=%t", ref, force))
	if f.removeContainer == nil {
		return notFound("container " + ref)
	}
	return f.removeContainer(ctx, ref, force)
}

// testEnv is a server on a fake backend behind a loopback httptest server.
type testEnv struct {
	fake *fakeBackend
	s    *Server
	srv  *httptest.Server
	logs *lockedBuffer
}

// ownFS is the file system of the tests' own user: httptest serves on TCP,
// where callerFS refuses every path.
func ownFS(*http.Request) (hostfs.FS, error) { return hostfs.OS(), nil }

func newTestEnv(t *testing.T, fake *fakeBackend, opts ...Opt) *testEnv {
	t.Helper()
	logger := logrus.New()
	logs := &lockedBuffer{}
	logger.SetOutput(logs)
	logger.SetFormatter(&logrus.JSONFormatter{})
	s, err := New(fake, append([]Opt{WithLogger(logger), WithVersion("test"), WithPolicy(listener.Open()), WithHostFS(ownFS)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &testEnv{fake: fake, s: s, srv: srv, logs: logs}
}

// lockedBuffer is a log sink the server goroutines write to.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// response is a finished response, body read.
type response struct {
	*http.Response
	body []byte
}

type reqOpt func(*http.Request)

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

// do sends a request with body (nil, a string or a value encoded as JSON).
func (e *testEnv) do(t *testing.T, method, path string, body any, opts ...reqOpt) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Response: resp, body: data}
}

// decode decodes the body into v, failing the test on a bad body.
func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

// want checks the status and, for JSON, the content type.
func (r response) want(t *testing.T, status int) response {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", r.StatusCode, status, r.body)
	}
	return r
}

// wantError checks the status and the envelope's code, and returns the
// envelope.
func (r response) wantError(t *testing.T, status int, code string) api.Error {
	t.Helper()
	r.want(t, status)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error content type %q", ct)
	}
	var env api.ErrorResponse
	r.decode(t, &env)
	if env.Error.Code != code {
		t.Fatalf("code %q, want %q; body %s", env.Error.Code, code, r.body)
	}
	if env.Error.Message == "" {
		t.Fatalf("error without a message: %s", r.body)
	}
	return env.Error
}
