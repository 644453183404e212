package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"net/http"
	"os"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider"
	"github.com/containerprovider/containerprovider/provider/hostfs"
	"github.com/containerprovider/containerprovider/server/listener"
	providerserver "github.com/containerprovider/containerprovider/server/provider"
)

// fakeBackend is a providerd engine whose answers the test sets. A method
// without a function answers NotFound or an empty list.
type fakeBackend struct {
	mu       sync.Mutex
	installs []api.InstallRequest
	finds    []provider.FindOptions
	gets     []provider.GetOptions
	removes  []provider.RemoveOptions
	added    []api.Source
	canceled []string

	findResult   []api.FindEntry
	findWarnings []string
	imagesResult []api.Image
	removeFn     func(provider.RemoveOptions) (api.RemoveResult, error)
	addSourceErr error
	jobsResult   []api.Job
	job          *api.Job
	// watch makes the events of a job; nil: NotFound.
	watch func(ctx context.Context, id string) (<-chan api.JobEvent, error)
	// installErr refuses installs.
	installErr error

	// save writes the archive of a streamed save; nil: NotFound.
	save       func(req api.SaveRequest, w io.Writer) (api.Image, error)
	saves      []api.SaveRequest
	saveResult api.SaveResult
	// loaded is what Load read; loadResult its answer.
	loaded     []byte
	loadFiles  []string
	loadResult api.LoadResult
	loadErr    error

	containersResult []api.Container
	creates          []api.ContainerCreateRequest
	states           []string // "start web1", "stop web1"
	removedCtrs      []string // "web1 force=true"
	// copied is what CopyToContainer read, by "ref dest".
	copied    map[string][]byte
	copyErr   error
	commits   []api.CommitRequest
	commitErr error

	// sources, when set, is the answer of Sources instead of catalog and
	// hub.
	sources []api.Source
}

func (f *fakeBackend) Save(_ context.Context, req api.SaveRequest, w io.Writer) (api.Image, error) {
	f.mu.Lock()
	f.saves = append(f.saves, req)
	save := f.save
	f.mu.Unlock()
	if save == nil {
		return api.Image{}, fmt.Errorf("image %q: %w", req.Name, errdefs.ErrNotFound)
	}
	return save(req, w)
}

func (f *fakeBackend) SaveToPath(_ context.Context, req api.SaveRequest, _ hostfs.FS) (api.SaveResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.saves = append(f.saves, req)
	return f.saveResult, nil
}

func (f *fakeBackend) PlanSave(_ context.Context, req api.SaveRequest) (api.SaveResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.saves = append(f.saves, req)
	path := req.Path
	if path == "" {
		path = "NanoServer-10-0-10586-0.tar"
	}
	return api.SaveResult{WhatIf: true, Path: path, Image: api.Image{Name: "NanoServer", Version: "10.0.10586.0"},
		Images: []string{"NanoServer 10.0.10586.0"}}, nil
}

func (f *fakeBackend) LoadFile(_ context.Context, _ *os.File, label string) (api.LoadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loadFiles = append(f.loadFiles, label)
	return f.loadResult, f.loadErr
}

func (f *fakeBackend) Load(_ context.Context, r io.Reader) (api.LoadResult, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return api.LoadResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loaded = data
	return f.loadResult, f.loadErr
}

func (f *fakeBackend) Commit(_ context.Context, req api.CommitRequest) (api.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commits = append(f.commits, req)
	if f.commitErr != nil {
		return api.Image{}, f.commitErr
	}
	return api.Image{Name: req.Name, Publisher: "CN=" + req.Publisher, Version: req.Version + ".0.0",
		ParentImage: &api.ParentRef{Name: "NanoServer", Version: "10.0.10586.0", Publisher: "CN=Microsoft"}}, nil
}

func (f *fakeBackend) CreateContainer(_ context.Context, req api.ContainerCreateRequest) (api.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates = append(f.creates, req)
	if req.Image != "NanoServer" {
		return api.Container{}, fmt.Errorf("image %q: %w", req.Image, errdefs.ErrNotFound)
	}
	return api.Container{ID: strings.Repeat("0c", 32), Name: req.Name, Image: "NanoServer 10.0.10586.0",
		ParentImageName: "NanoServer", State: api.ContainerCreated, Created: time.Date(2016, 1, 12, 9, 30, 0, 0, time.UTC)}, nil
}

func (f *fakeBackend) Containers(context.Context) ([]api.Container, error) {
	return f.containersResult, nil
}

func (f *fakeBackend) Container(_ context.Context, ref string) (api.Container, error) {
	return api.Container{}, fmt.Errorf("container %s: %w", ref, errdefs.ErrNotFound)
}

func (f *fakeBackend) setState(verb, ref, state string) (api.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states = append(f.states, verb+" "+ref)
	if ref != "web1" {
		return api.Container{}, fmt.Errorf("container %s: %w", ref, errdefs.ErrNotFound)
	}
	return api.Container{ID: strings.Repeat("0c", 32), Name: "web1", Image: "NanoServer 10.0.10586.0", ParentImageName: "NanoServer", State: state}, nil
}

func (f *fakeBackend) StartContainer(_ context.Context, ref string) (api.Container, error) {
	return f.setState("start", ref, api.ContainerRunning)
}

func (f *fakeBackend) StopContainer(_ context.Context, ref string) (api.Container, error) {
	return f.setState("stop", ref, api.ContainerStopped)
}

func (f *fakeBackend) CopyToContainer(_ context.Context, ref, dest string, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.copyErr != nil {
		return f.copyErr
	}
	if f.copied == nil {
		f.copied = map[string][]byte{}
	}
	f.copied[ref+" "+dest] = data
	return nil
}

func (f *fakeBackend) RemoveContainer(_ context.Context, ref string, force bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removedCtrs = append(f.removedCtrs, fmt.Sprintf("%s force=%t", ref, force))
	if ref == "running" && !force {
		return fmt.Errorf("container running is running; stop it or use --force: %w", errdefs.ErrConflict)
	}
	return nil
}

// fakeSynced is the last sync of the fake's sources.
var fakeSynced = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

func (f *fakeBackend) Sources(context.Context) ([]api.Source, error) {
	if f.sources != nil {
		return f.sources, nil
	}
	return []api.Source{
		{Name: "catalog", Location: "http://127.0.0.1:5000", Status: &api.SourceStatus{Mode: "feed", Entries: 20, Complete: true, LastSync: &fakeSynced}},
		{Name: "hub", Location: "https://registry.example", Username: "me", Status: &api.SourceStatus{Mode: "crawl", Entries: 7, Syncing: true, Repositories: 10, RepositoriesRead: 3}},
	}, nil
}

func (f *fakeBackend) RefreshSource(_ context.Context, name string) (api.Source, error) {
	switch name {
	case "catalog":
		return api.Source{Name: "catalog", Location: "http://127.0.0.1:5000", Status: &api.SourceStatus{Mode: "feed", Entries: 20, Complete: true, LastSync: &fakeSynced}}, nil
	case "hub":
		return api.Source{Name: "hub", Location: "https://registry.example", Status: &api.SourceStatus{
			Mode: "crawl", Entries: 7, Complete: true, LastSync: &fakeSynced, LastError: "GET /v2/_catalog: 503 Service Unavailable"}}, nil
	}
	return api.Source{}, fmt.Errorf("source %q: %w", name, errdefs.ErrNotFound)
}

func (f *fakeBackend) AddSource(_ context.Context, s api.Source) (api.Source, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.addSourceErr != nil {
		return api.Source{}, f.addSourceErr
	}
	f.added = append(f.added, s)
	return s, nil
}

func (f *fakeBackend) RemoveSource(_ context.Context, name string) error {
	if name != "hub" {
		return fmt.Errorf("source %q: %w", name, errdefs.ErrNotFound)
	}
	return nil
}

func (f *fakeBackend) Find(_ context.Context, o provider.FindOptions) (api.FindResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finds = append(f.finds, o)
	if o.Name == "Missing" {
		return api.FindResponse{}, fmt.Errorf("no image named %q in the sources: %w", o.Name, errdefs.ErrNotFound)
	}
	return api.FindResponse{Images: f.findResult, Warnings: f.findWarnings}, nil
}

func (f *fakeBackend) Install(_ context.Context, req api.InstallRequest) (api.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.installErr != nil {
		return api.Job{}, f.installErr
	}
	f.installs = append(f.installs, req)
	return api.Job{ID: "j1", Kind: "install", State: api.JobQueued, Request: req}, nil
}

func (f *fakeBackend) Jobs(context.Context) ([]api.Job, error) { return f.jobsResult, nil }

func (f *fakeBackend) Job(_ context.Context, id string) (api.Job, error) {
	if f.job == nil || f.job.ID != id {
		return api.Job{}, fmt.Errorf("job %s: %w", id, errdefs.ErrNotFound)
	}
	return *f.job, nil
}

func (f *fakeBackend) Watch(ctx context.Context, id string) (<-chan api.JobEvent, error) {
	if f.watch == nil {
		return nil, fmt.Errorf("job %s: %w", id, errdefs.ErrNotFound)
	}
	return f.watch(ctx, id)
}

func (f *fakeBackend) Cancel(_ context.Context, id string) (api.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.canceled = append(f.canceled, id)
	if id != "j1" {
		return api.Job{}, fmt.Errorf("job %s: %w", id, errdefs.ErrNotFound)
	}
	return api.Job{ID: id, State: api.JobCanceled}, nil
}

func (f *fakeBackend) Images(_ context.Context, o provider.GetOptions) ([]api.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets = append(f.gets, o)
	return f.imagesResult, nil
}

// ImagesPage answers the listing of every image in one page.
func (f *fakeBackend) ImagesPage(_ context.Context, _ string, _ int) (provider.ImagePage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets = append(f.gets, provider.GetOptions{})
	var page provider.ImagePage
	for _, img := range f.imagesResult {
		b, err := json.Marshal(img)
		if err != nil {
			return provider.ImagePage{}, err
		}
		page.Images = append(page.Images, b)
	}
	return page, nil
}

func (f *fakeBackend) Remove(_ context.Context, o provider.RemoveOptions) (api.RemoveResult, error) {
	f.mu.Lock()
	f.removes = append(f.removes, o)
	f.mu.Unlock()
	if f.removeFn == nil {
		return api.RemoveResult{}, fmt.Errorf("image %q: %w", o.Name, errdefs.ErrNotFound)
	}
	return f.removeFn(o)
}

func (f *fakeBackend) WriteMetrics(w io.Writer) error { return nil }

// scripted returns a Watch that sends events, then closes the channel (or
// ends with ctx).
func scripted(events ...api.JobEvent) func(context.Context, string) (<-chan api.JobEvent, error) {
	return func(ctx context.Context, id string) (<-chan api.JobEvent, error) {
		ch := make(chan api.JobEvent)
		go func() {
			defer close(ch)
			for _, ev := range events {
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
			}
		}()
		return ch, nil
	}
}

// syncBuffer is an output stream that the command and the test share.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	onWrite func()
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.buf.Write(p)
	b.mu.Unlock()
	if b.onWrite != nil {
		b.onWrite()
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a providerd API on a fake engine, and a cimage that talks to it.
type env struct {
	fake *fakeBackend
	url  string
	// interrupt is Ctrl-C for the run in progress.
	interrupt context.CancelFunc
	mu        sync.Mutex
	// onOutput, when set, runs after each write to stdout.
	onOutput func()
	// environ is the environment of the runs, CIMAGE_ENDPOINT aside.
	environ map[string]string
	// interactive makes the runs answerable, as on a terminal.
	interactive bool
}

func newEnv(t *testing.T, fake *fakeBackend, opts ...providerserver.Opt) *env {
	t.Helper()
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	s, err := providerserver.New(fake, append([]providerserver.Opt{providerserver.WithLogger(logger), providerserver.WithPolicy(listener.Open()),
		providerserver.WithHostFS(func(*http.Request) (hostfs.FS, error) { return hostfs.OS(), nil })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &env{fake: fake, url: srv.URL}
}

// result is a finished run of cimage.
type result struct {
	code           int
	stdout, stderr string
}

// run runs cimage with args against the env's server, with stdin.
func (e *env) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	out, errOut := &syncBuffer{onWrite: e.onOutput}, &syncBuffer{}
	a := &app{
		stdin:  strings.NewReader(stdin),
		stdout: out,
		stderr: errOut,
		getenv: func(k string) string {
			if k == "CIMAGE_ENDPOINT" {
				return e.url
			}
			return e.environ[k]
		},
		terminal:    func(io.Writer) bool { return false },
		interactive: func() bool { return e.interactive },
		interrupt: func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			e.mu.Lock()
			e.interrupt = cancel
			e.mu.Unlock()
			return ctx, cancel
		},
		loc: time.UTC,
	}
	code := a.main(t.Context(), args)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// ctrlC interrupts the run in progress.
func (e *env) ctrlC() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.interrupt != nil {
		e.interrupt()
	}
}

// want checks the exit code, and that stderr is one line or empty.
func (r result) want(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

func newTestFlagSet() *flag.FlagSet {
	f := flag.NewFlagSet("test", flag.ContinueOnError)
	f.SetOutput(io.Discard)
	return f
}
