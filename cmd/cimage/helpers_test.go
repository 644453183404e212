package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider"
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
	imagesResult []api.Image
	removeFn     func(provider.RemoveOptions) (api.RemoveResult, error)
	addSourceErr error
	jobsResult   []api.Job
	job          *api.Job
	// watch makes the events of a job; nil: NotFound.
	watch func(ctx context.Context, id string) (<-chan api.JobEvent, error)
	// installErr refuses installs.
	installErr error
}

func (f *fakeBackend) Sources(context.Context) ([]api.Source, error) {
	return []api.Source{{Name: "catalog", Location: "http://127.0.0.1:5000"}, {Name: "hub", Location: "https://registry.example", Username: "me"}}, nil
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

func (f *fakeBackend) Find(_ context.Context, o provider.FindOptions) ([]api.FindEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finds = append(f.finds, o)
	if o.Name == "Missing" {
		return nil, fmt.Errorf("no image named %q in the sources: %w", o.Name, errdefs.ErrNotFound)
	}
	return f.findResult, nil
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
}

func newEnv(t *testing.T, fake *fakeBackend, opts ...providerserver.Opt) *env {
	t.Helper()
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	s, err := providerserver.New(fake, append([]providerserver.Opt{providerserver.WithLogger(logger)}, opts...)...)
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
		stdin:    strings.NewReader(stdin),
		stdout:   out,
		stderr:   errOut,
		getenv:   func(k string) string { return map[string]string{"CIMAGE_ENDPOINT": e.url}[k] },
		terminal: func(io.Writer) bool { return false },
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
