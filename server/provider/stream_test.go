package provider

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/server/listener"
)

// guard bounds every wait of these tests: a stream that does not flush
// would otherwise block a read forever. It is a failure guard, not a
// measured duration.
const guard = 30 * time.Second

// scriptedJob is a fake job whose events the test sends one at a time.
type scriptedJob struct {
	events   chan api.JobEvent
	watchCtx chan context.Context
}

func newScriptedJob() *scriptedJob {
	return &scriptedJob{events: make(chan api.JobEvent), watchCtx: make(chan context.Context, 4)}
}

// watch is a Backend.Watch that forwards the test's events until ctx ends,
// then closes the channel, as the contract says.
func (j *scriptedJob) watch(ctx context.Context, id string) (<-chan api.JobEvent, error) {
	if id != "j1" {
		return nil, notFound("job " + id)
	}
	j.watchCtx <- ctx
	out := make(chan api.JobEvent)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-j.events:
				if !ok {
					return
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// send hands one event to the stream; it returns once the watcher took it.
func (j *scriptedJob) send(t *testing.T, ev api.JobEvent) {
	t.Helper()
	select {
	case j.events <- ev:
	case <-time.After(guard):
		t.Fatalf("nobody took event %s", ev.Type)
	}
}

// watched returns the context of the Watch call.
func (j *scriptedJob) watched(t *testing.T) context.Context {
	t.Helper()
	select {
	case ctx := <-j.watchCtx:
		return ctx
	case <-time.After(guard):
		t.Fatal("Watch was not called")
		return nil
	}
}

func jobEvents(id string) []api.JobEvent {
	at := time.Unix(1700000000, 0).UTC()
	job := &api.Job{ID: id, Kind: "install", State: api.JobRunning, Request: api.InstallRequest{Name: "NanoServer"}}
	done := &api.Job{ID: id, Kind: "install", State: api.JobSucceeded, Message: "Downloaded in 0 hours, 0 minutes, 1 seconds."}
	return []api.JobEvent{
		{Type: api.EventState, JobID: id, Time: at, State: api.JobRunning, Job: job},
		{Type: api.EventProgress, JobID: id, Time: at, Blob: &api.BlobProgress{Digest: "sha256:aa", Total: 100, Done: 50, State: "downloading"}},
		{Type: api.EventProgress, JobID: id, Time: at, Blob: &api.BlobProgress{Digest: "sha256:aa", Total: 100, Done: 100, State: "done"}},
		{Type: api.EventLog, JobID: id, Time: at, Message: "committed NanoServer 10.0.10586.0"},
		{Type: api.EventResult, JobID: id, Time: at, State: api.JobSucceeded, Job: done},
	}
}

// openStream sends a request whose answer is a stream and returns the
// response, unread.
func openStream(t *testing.T, ctx context.Context, url, method, body string) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	if ct := resp.Header.Get("Content-Type"); ct != ContentTypeNDJSON {
		t.Fatalf("content type %q", ct)
	}
	return resp
}

// readEvent reads one line of the stream.
func readEvent(t *testing.T, r *bufio.Reader) api.JobEvent {
	t.Helper()
	line, err := r.ReadBytes('\n')
	if err != nil {
		t.Fatalf("reading an event: %v (read %q)", err, line)
	}
	var ev api.JobEvent
	if err := json.Unmarshal(line, &ev); err != nil {
		t.Fatalf("event %q: %v", line, err)
	}
	return ev
}

func installingBackend(job *scriptedJob) *fakeBackend {
	return &fakeBackend{
		installFn: func(_ context.Context, req api.InstallRequest) (api.Job, error) {
			return api.Job{ID: "j1", Kind: "install", State: api.JobQueued, Request: req}, nil
		},
		watch: job.watch,
	}
}

// TestInstallFollowStreamsEachEvent sends the events one at a time and
// reads each before sending the next: each line must have been flushed on
// its own.
func TestInstallFollowStreamsEachEvent(t *testing.T) {
	job := newScriptedJob()
	e := newTestEnv(t, installingBackend(job))
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	resp := openStream(t, ctx, e.srv.URL+"/v1/images/install?follow=true", http.MethodPost, `{"name":"NanoServer"}`)
	if loc := resp.Header.Get("Location"); loc != "/v1/jobs/j1" {
		t.Fatalf("Location %q", loc)
	}
	job.watched(t)
	r := bufio.NewReader(resp.Body)
	want := jobEvents("j1")
	for i, ev := range want {
		job.send(t, ev)
		got := readEvent(t, r)
		if got.Type != ev.Type || got.JobID != "j1" || !got.Time.Equal(ev.Time) {
			t.Fatalf("event %d: %+v, want %+v", i, got, ev)
		}
		if ev.Blob != nil && (got.Blob == nil || *got.Blob != *ev.Blob) {
			t.Fatalf("event %d: blob %+v, want %+v", i, got.Blob, ev.Blob)
		}
	}
	close(job.events)
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("after the result: %q, %v", rest, err)
	}
}

// TestDisconnectDoesNotCancel: a client that goes away ends the Watch, and
// nothing cancels the job.
func TestDisconnectDoesNotCancel(t *testing.T) {
	job := newScriptedJob()
	e := newTestEnv(t, installingBackend(job))
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	resp := openStream(t, ctx, e.srv.URL+"/v1/images/install?follow=true", http.MethodPost, `{"name":"NanoServer"}`)
	watchCtx := job.watched(t)
	job.send(t, jobEvents("j1")[0])
	readEvent(t, bufio.NewReader(resp.Body))

	cancel() // the client hangs up
	select {
	case <-watchCtx.Done():
	case <-time.After(guard):
		t.Fatal("the Watch context did not end when the client went away")
	}
	for _, c := range e.fake.called() {
		if strings.HasPrefix(c, "Cancel") {
			t.Fatalf("the job was canceled: %v", e.fake.called())
		}
	}
}

// TestReattach reads the events of a job by id, and refuses an unknown one
// in the envelope.
func TestReattach(t *testing.T) {
	e := newTestEnv(t, &fakeBackend{watch: func(_ context.Context, id string) (<-chan api.JobEvent, error) {
		if id != "j9" {
			return nil, notFound("job " + id)
		}
		evs := jobEvents("j9")
		ch := make(chan api.JobEvent, len(evs))
		for _, ev := range evs {
			ch <- ev
		}
		close(ch)
		return ch, nil
	}})
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	resp := openStream(t, ctx, e.srv.URL+"/v1/jobs/j9/events", http.MethodGet, "")
	r := bufio.NewReader(resp.Body)
	var types []string
	for range len(jobEvents("j9")) {
		types = append(types, readEvent(t, r).Type)
	}
	if !slices.Equal(types, []string{"state", "progress", "progress", "log", "result"}) {
		t.Fatalf("events %v", types)
	}
	e.do(t, http.MethodGet, "/v1/jobs/nope/events", nil).wantError(t, http.StatusNotFound, "NotFound")
	e.do(t, http.MethodGet, "/v1/jobs/j9/events?from=3", nil).wantError(t, http.StatusBadRequest, "InvalidArgument")
}

// TestStopStreams ends a running stream cleanly, without a result event.
func TestStopStreams(t *testing.T) {
	job := newScriptedJob()
	e := newTestEnv(t, installingBackend(job))
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	resp := openStream(t, ctx, e.srv.URL+"/v1/jobs/j1/events", http.MethodGet, "")
	watchCtx := job.watched(t)
	r := bufio.NewReader(resp.Body)
	job.send(t, jobEvents("j1")[0])
	readEvent(t, r)

	e.s.StopStreams()
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("after StopStreams: %q, %v", rest, err)
	}
	<-watchCtx.Done()
	// Later streams end at once too.
	resp = openStream(t, ctx, e.srv.URL+"/v1/jobs/j1/events", http.MethodGet, "")
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
		t.Fatalf("stream after StopStreams: %q, %v", rest, err)
	}
}

// TestStreamOutlivesServerTimeouts runs a stream on a server whose read
// and write timeouts are far shorter than the stream: the stream must move
// the write deadline, else net/http drops the connection at WriteTimeout,
// and the ReadTimeout must not end the request once its body is read.
func TestStreamOutlivesServerTimeouts(t *testing.T) {
	job := newScriptedJob()
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	s, err := New(installingBackend(job), WithLogger(logger), WithPolicy(listener.Open()))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(s)
	const short = 50 * time.Millisecond
	srv.Config.ReadTimeout = short
	srv.Config.WriteTimeout = short
	srv.Start()
	defer srv.Close()

	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	resp := openStream(t, ctx, srv.URL+"/v1/images/install?follow=true", http.MethodPost, `{"name":"NanoServer"}`)
	watchCtx := job.watched(t)
	r := bufio.NewReader(resp.Body)
	for _, ev := range jobEvents("j1") {
		// Let both server timeouts pass between events.
		time.Sleep(4 * short)
		if watchCtx.Err() != nil {
			t.Fatalf("the stream's context ended: %v", context.Cause(watchCtx))
		}
		job.send(t, ev)
		if got := readEvent(t, r); got.Type != ev.Type {
			t.Fatalf("event %s, want %s", got.Type, ev.Type)
		}
	}
	close(job.events)
	if _, err := io.ReadAll(r); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
}
