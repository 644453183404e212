package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/server/middleware"
)

// ContentTypeNDJSON is the content type of the job event streams: one
// api.JobEvent per line.
const ContentTypeNDJSON = "application/x-ndjson"

// StreamWriteWindow is how long the write of one event may take. A job
// stream may last as long as the job, hours for a large image, so it is
// not bound by the http.Server's WriteTimeout: the write deadline is moved
// to now + StreamWriteWindow before every event, and a client that reads
// nothing for that long is cut off (its job goes on).
const StreamWriteWindow = 2 * time.Minute

// streamEvents writes the events of job id as NDJSON, one api.JobEvent per
// line, flushed after each, until the result event, the end of the
// request's context (the client went away) or StopStreams. Ending the
// stream never ends the job: only Watch's context ends.
//
// Deadlines: the http.Server's WriteTimeout would cut the stream at a
// fixed time after the request began, so the write deadline moves to now +
// StreamWriteWindow before every event, through http.ResponseController. A
// writer that does not support deadlines (an httptest recorder) is
// streamed without them. The ReadTimeout needs nothing: it covers the
// request body, and net/http clears the read deadline once the body is
// read, when it starts the background read that notices a client hanging
// up.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request, id string) error {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.streams, cancel)
	defer stop()

	events, err := s.backend.Watch(ctx, id)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	extend := func() {
		if err := rc.SetWriteDeadline(time.Now().Add(StreamWriteWindow)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			middleware.Log(ctx).WithError(err).Debug("extending the write deadline of an event stream")
		}
	}

	h := w.Header()
	h.Set("Content-Type", ContentTypeNDJSON)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	extend()
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return streamEnded(ctx, fmt.Errorf("job %s: flushing the stream headers: %w", id, err))
	}

	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	var n int
	for {
		select {
		case <-ctx.Done():
			// Watch closes the channel when ctx ends; not waiting for
			// it keeps a slow backend from holding the handler.
			middleware.AddFields(ctx, logrus.Fields{"job": id, "events": n})
			return nil
		case ev, ok := <-events:
			if !ok {
				middleware.AddFields(ctx, logrus.Fields{"job": id, "events": n})
				return nil
			}
			extend()
			if err := enc.Encode(ev); err != nil {
				return streamEnded(ctx, fmt.Errorf("job %s: writing event %d: %w", id, n, err))
			}
			if err := rc.Flush(); err != nil {
				return streamEnded(ctx, fmt.Errorf("job %s: flushing event %d: %w", id, n, err))
			}
			n++
		}
	}
}

// streamEnded logs why a stream that had started ended early (the
// response can no longer carry an error), and returns it for the
// request's log line.
func streamEnded(ctx context.Context, err error) error {
	middleware.Log(ctx).WithError(err).Debug("event stream ended early")
	return err
}
