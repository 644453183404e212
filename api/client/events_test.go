package client

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

// ndjson writes events as an NDJSON stream, flushed after each line.
func ndjson(lines ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Location", "/v1/jobs/j7")
		w.WriteHeader(http.StatusOK)
		for _, l := range lines {
			_, _ = io.WriteString(w, l+"\n")
			_ = http.NewResponseController(w).Flush()
		}
	}
}

func event(t *testing.T, ev api.JobEvent) string {
	t.Helper()
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestEventStream(t *testing.T) {
	now := time.Unix(1700000000, 0).UTC()
	job := &api.Job{ID: "j7", State: api.JobRunning}
	state := event(t, api.JobEvent{Type: api.EventState, JobID: "j7", Time: now, State: api.JobRunning, Job: job})
	progress := event(t, api.JobEvent{Type: api.EventProgress, JobID: "j7", Time: now, Blob: &api.BlobProgress{Digest: "sha256:aa", Total: 10, Done: 4, State: "downloading"}})
	logLine := event(t, api.JobEvent{Type: api.EventLog, JobID: "j7", Time: now, Message: "Installing parent WindowsServerCore"})
	result := event(t, api.JobEvent{Type: api.EventResult, JobID: "j7", Time: now, State: api.JobSucceeded,
		Job: &api.Job{ID: "j7", State: api.JobSucceeded, Message: "Downloaded in 0 hours, 0 minutes, 1 seconds."}})

	for _, tc := range []struct {
		name    string
		lines   []string
		types   []string
		wantEnd func(error) bool
	}{
		{
			name:    "to the result",
			lines:   []string{state, progress, "", logLine, result},
			types:   []string{api.EventState, api.EventProgress, api.EventLog, api.EventResult},
			wantEnd: func(err error) bool { return err == io.EOF }, //nolint:errorlint // Next returns io.EOF itself
		},
		{
			name:    "cut before the result",
			lines:   []string{state, progress},
			types:   []string{api.EventState, api.EventProgress},
			wantEnd: func(err error) bool { return errors.Is(err, ErrStreamEnded) && errors.Is(err, io.ErrUnexpectedEOF) },
		},
		{
			name:    "a line that is not JSON",
			lines:   []string{state, "{not json"},
			types:   []string{api.EventState},
			wantEnd: func(err error) bool { return err != nil && !errors.Is(err, ErrStreamEnded) && err != io.EOF }, //nolint:errorlint
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, map[string]http.HandlerFunc{
				"POST /v1/images/install": ndjson(tc.lines...),
				"GET /v1/jobs/j7/events":  ndjson(tc.lines...),
			})
			c := newClient(t, ts)
			for _, open := range []struct {
				name string
				fn   func() (*EventStream, error)
			}{
				{"follow", func() (*EventStream, error) {
					return c.InstallFollow(t.Context(), api.InstallRequest{Name: "NanoServer"})
				}},
				{"re-attach", func() (*EventStream, error) { return c.Events(t.Context(), "j7") }},
			} {
				s, err := open.fn()
				if err != nil {
					t.Fatalf("%s: %v", open.name, err)
				}
				if s.JobID() != "j7" {
					t.Fatalf("%s: job id %q", open.name, s.JobID())
				}
				var types []string
				var end error
				for range 10 {
					ev, err := s.Next()
					if err != nil {
						end = err
						break
					}
					types = append(types, ev.Type)
				}
				if strings.Join(types, ",") != strings.Join(tc.types, ",") {
					t.Fatalf("%s: events %v, want %v", open.name, types, tc.types)
				}
				if !tc.wantEnd(end) {
					t.Fatalf("%s: end %v", open.name, end)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatalf("second Close: %v", err)
				}
			}
			got := ts.last(t)
			if got.path != "/v1/jobs/j7/events" {
				t.Fatalf("path %q", got.path)
			}
		})
	}
}

func TestEventStreamErrors(t *testing.T) {
	ts := newTestServer(t, map[string]http.HandlerFunc{
		"POST /v1/images/install": answer(400, api.ErrorResponse{Error: api.Error{Code: "InvalidArgument", Message: "RequiredVersion and MinimumVersion exclude each other"}}),
	})
	c := newClient(t, ts)
	_, err := c.InstallFollow(t.Context(), api.InstallRequest{Name: "x"})
	if !errdefs.IsInvalidArgument(err) || err.Error() != "RequiredVersion and MinimumVersion exclude each other" {
		t.Fatalf("follow error %v", err)
	}
	if got := ts.last(t); got.query.Get("follow") != "true" {
		t.Fatalf("follow not asked: %v", got.query)
	}
	if _, err := c.Events(t.Context(), "nope"); !errdefs.IsNotFound(err) {
		t.Fatalf("unknown job: %v", err)
	}
	if _, err := c.Events(t.Context(), ""); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("empty id: %v", err)
	}
}
