package client

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/containerprovider/containerprovider/api"
)

// maxEventSize caps one line of an event stream: a state or result event
// carries the whole job, with the progress of each of its blobs.
const maxEventSize = 4 << 20

// ErrStreamEnded is the error of an event stream that ended before its
// result event: the connection dropped, or providerd shut down. The job
// goes on; Events re-attaches to it.
var ErrStreamEnded = errors.New("event stream ended before the job's result")

// EventStream reads the NDJSON events of a job. It is not safe for
// concurrent Next calls; Close may be called from any goroutine, for
// instance to stop a Next that waits.
type EventStream struct {
	jobID string
	body  io.ReadCloser
	sc    *bufio.Scanner
	done  bool // the result event was read

	closeOnce sync.Once
	closeErr  error
}

func newEventStream(resp *http.Response, jobID string) *EventStream {
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventSize)
	return &EventStream{jobID: jobID, body: resp.Body, sc: sc}
}

// JobID is the id of the job, when known before the first event (Events,
// or the Location of an install); "" otherwise.
func (s *EventStream) JobID() string { return s.jobID }

// Next returns the next event. After the result event it returns io.EOF. A
// stream that ends before the result gives an error that wraps
// ErrStreamEnded (and io.ErrUnexpectedEOF); a stream closed by Close gives
// the read error of the closed body.
func (s *EventStream) Next() (api.JobEvent, error) {
	if s.done {
		return api.JobEvent{}, io.EOF
	}
	for s.sc.Scan() {
		line := s.sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var ev api.JobEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return api.JobEvent{}, fmt.Errorf("job %s: event stream: %w", s.jobID, err)
		}
		if s.jobID == "" {
			s.jobID = ev.JobID
		}
		if ev.Type == api.EventResult {
			s.done = true
		}
		return ev, nil
	}
	if err := s.sc.Err(); err != nil {
		return api.JobEvent{}, fmt.Errorf("job %s: event stream: %w", s.jobID, err)
	}
	return api.JobEvent{}, fmt.Errorf("job %s: %w: %w", s.jobID, ErrStreamEnded, io.ErrUnexpectedEOF)
}

// Close closes the stream. It never cancels the job.
func (s *EventStream) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.body.Close() })
	return s.closeErr
}
