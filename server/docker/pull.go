package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// StreamWriteWindow is how long the write of one progress message may
// take. A pull lasts as long as its install job, so it is not bound by the
// http.Server's WriteTimeout: the write deadline moves to now +
// StreamWriteWindow before every message.
const StreamWriteWindow = 2 * time.Minute

// jsonProgress is moby's JSONProgress (progressDetail).
type jsonProgress struct {
	Current int64 `json:"current"`
	Total   int64 `json:"total,omitempty"`
}

// jsonError is moby's JSONError (errorDetail).
type jsonError struct {
	Message string `json:"message"`
}

// jsonMessage is one line of moby's jsonmessage stream.
type jsonMessage struct {
	Status         string        `json:"status,omitempty"`
	ID             string        `json:"id,omitempty"`
	ProgressDetail *jsonProgress `json:"progressDetail,omitempty"`
	ErrorDetail    *jsonError    `json:"errorDetail,omitempty"`
	Error          string        `json:"error,omitempty"`
}

// pullRequest reads the reference of POST /images/create: fromImage, with
// its tag, or the tag parameter, else latest. fromSrc (docker import) and
// a digest tag are not supported.
func pullRequest(r *http.Request) (imageRef, error) {
	q := r.URL.Query()
	if q.Get("fromSrc") != "" {
		return imageRef{}, newError(errdefs.ErrNotImplemented, "importing an image (fromSrc) is not supported by providerd")
	}
	from := strings.TrimSpace(q.Get("fromImage"))
	if from == "" {
		return imageRef{}, newError(errdefs.ErrInvalidArgument, "fromImage is required")
	}
	if tag := strings.TrimSpace(q.Get("tag")); tag != "" {
		if _, err := digest.Parse(tag); err == nil {
			from += "@" + tag
		} else {
			from += ":" + tag
		}
	}
	ref, err := parseRef(from)
	if err != nil {
		return imageRef{}, err
	}
	if ref.Digest != "" {
		return imageRef{}, newError(errdefs.ErrNotImplemented, "pulling by digest (%s) is not supported by providerd: pull by tag", ref)
	}
	return ref, nil
}

// installRequest is the provider's install of ref: tag latest is the
// highest version, any other tag the version it names.
func installRequest(ref imageRef) api.InstallRequest {
	req := api.InstallRequest{Name: ref.Repo}
	if ref.Tag != latestTag {
		req.RequiredVersion = ref.Tag
	}
	return req
}

// install starts (or joins) the provider's install job of ref. A name or
// version that no source has is Docker's "manifest ... not found", not
// the provider's text, which speaks of the cmdlets.
func (s *Server) install(ctx context.Context, ref imageRef) (api.Job, error) {
	job, err := s.backend.Install(ctx, installRequest(ref))
	var fe *find.Error
	if errors.As(err, &fe) && fe.ID == find.IDNoMatchFoundForCriteria {
		return api.Job{}, newError(errdefs.ErrNotFound, "manifest for %s not found: manifest unknown: no source of providerd has this image", ref)
	}
	return job, err
}

// restoreRefs gives the image of a succeeded install job its own refs
// back when it has none: an image that docker rmi -f untagged for its
// containers, which the install found installed, so that the pull names
// it again. A failure is logged: the pull itself succeeded.
func (s *Server) restoreRefs(ctx context.Context, job api.Job) {
	if job.State != api.JobSucceeded || job.Result == nil || len(job.Result.Refs) > 0 {
		return
	}
	if _, err := s.backend.RestoreImageRefs(ctx, job.Result.Digest); err != nil {
		middleware.Log(ctx).WithError(err).WithField("image", job.Result.Digest).Warn("the refs of a pulled image were not restored")
	}
}

// pullImage is `docker pull`: it starts (or joins) the provider's install
// job, then streams its progress as jsonmessage lines. Errors before the
// job exists (a bad or unknown name) are plain HTTP errors; once the
// stream has begun, a failure is the last line, with errorDetail. A
// client that goes away stops the stream, not the job.
func (s *Server) pullImage(w http.ResponseWriter, r *http.Request) error {
	ref, err := pullRequest(r)
	if err != nil {
		return err
	}
	job, err := s.install(r.Context(), ref)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.streams, cancel)
	defer stop()

	var events <-chan api.JobEvent
	if job.State == api.JobQueued || job.State == api.JobRunning {
		if events, err = s.backend.Watch(ctx, job.ID); err != nil {
			return err
		}
	}
	ps := newPullStream(w, ref)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	ps.extend()
	w.WriteHeader(http.StatusOK)
	if err := ps.send(jsonMessage{Status: "Pulling from " + ref.Path, ID: ref.Tag}); err != nil {
		return err
	}
	if events == nil {
		s.restoreRefs(ctx, job)
		return ps.finish(job, false)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return ps.fail(fmt.Sprintf("the progress stream of job %s ended before the job; the pull goes on in providerd", job.ID))
			}
			if err := ps.event(ev); err != nil {
				return err
			}
			if ev.Type == api.EventResult && ev.Job != nil {
				s.restoreRefs(ctx, *ev.Job)
				return ps.finish(*ev.Job, true)
			}
		}
	}
}

// pullStream turns job events into jsonmessage lines.
type pullStream struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	enc *json.Encoder
	ref imageRef
	// state is the last state sent of each blob, by short id; order is
	// the order they were seen in.
	state map[string]string
	order []string
}

func newPullStream(w http.ResponseWriter, ref imageRef) *pullStream {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &pullStream{w: w, rc: http.NewResponseController(w), enc: enc, ref: ref, state: map[string]string{}}
}

// extend moves the write deadline; a writer without deadlines (an
// httptest recorder) streams without them.
func (ps *pullStream) extend() {
	_ = ps.rc.SetWriteDeadline(time.Now().Add(StreamWriteWindow))
}

func (ps *pullStream) send(msgs ...jsonMessage) error {
	ps.extend()
	for _, m := range msgs {
		if err := ps.enc.Encode(m); err != nil {
			return fmt.Errorf("pull %s: writing progress: %w", ps.ref, err)
		}
	}
	if err := ps.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("pull %s: flushing progress: %w", ps.ref, err)
	}
	return nil
}

// event sends the lines of one job event: every blob of a state event,
// or the blob of a progress event.
func (ps *pullStream) event(ev api.JobEvent) error {
	var blobs []api.BlobProgress
	if ev.Job != nil {
		blobs = ev.Job.Blobs
	}
	if ev.Blob != nil {
		blobs = append(blobs, *ev.Blob)
	}
	var msgs []jsonMessage
	for _, b := range blobs {
		msgs = append(msgs, ps.blob(b)...)
	}
	if len(msgs) == 0 {
		return nil
	}
	return ps.send(msgs...)
}

// Blob states of api.BlobProgress (provider's job.go).
const (
	blobWaiting     = "waiting"
	blobDownloading = "downloading"
	blobVerifying   = "verifying"
	blobDone        = "done"
	blobPresent     = "present"

	blobConfig = "config" // api.BlobProgress.Kind of a config blob
)

// blob maps the progress of one blob onto Docker's layer lines: Pulling fs
// layer (or Already exists), Downloading with progressDetail, Verifying
// Checksum, Download complete. Config blobs get no lines, as in docker's
// own pull.
func (ps *pullStream) blob(b api.BlobProgress) []jsonMessage {
	if b.Kind == blobConfig {
		return nil
	}
	id := shortID(b.Digest)
	prev, seen := ps.state[id]
	var out []jsonMessage
	if !seen {
		ps.order = append(ps.order, id)
		if b.State == blobPresent {
			ps.state[id] = blobPresent
			return []jsonMessage{{Status: "Already exists", ID: id}}
		}
		out = append(out, jsonMessage{Status: "Pulling fs layer", ID: id})
		ps.state[id] = blobWaiting
		prev = blobWaiting
	}
	switch b.State {
	case blobPresent:
		if prev != blobPresent && prev != blobDone {
			out = append(out, jsonMessage{Status: "Already exists", ID: id})
			ps.state[id] = blobPresent
		}
	case blobDownloading:
		out = append(out, jsonMessage{Status: "Downloading", ID: id, ProgressDetail: &jsonProgress{Current: b.Done, Total: b.Total}})
		ps.state[id] = blobDownloading
	case blobVerifying:
		if prev != blobVerifying && prev != blobDone {
			out = append(out, jsonMessage{Status: "Verifying Checksum", ID: id})
			ps.state[id] = blobVerifying
		}
	case blobDone:
		if prev == blobDone || prev == blobPresent {
			break
		}
		if prev != blobVerifying {
			out = append(out, jsonMessage{Status: "Verifying Checksum", ID: id})
		}
		out = append(out, jsonMessage{Status: "Download complete", ID: id})
		ps.state[id] = blobDone
	}
	return out
}

// finish sends the end of the stream of a job that has ended: Pull
// complete for each downloaded blob, the digest and the status line; or
// the job's error. downloaded tells a job that ran from one that found the
// image installed.
func (ps *pullStream) finish(job api.Job, downloaded bool) error {
	if job.State != api.JobSucceeded {
		msg := job.Message
		if job.Error != nil {
			msg = job.Error.Message
		}
		if msg == "" {
			msg = "the install job ended in state " + job.State
		}
		return ps.fail(msg)
	}
	var msgs []jsonMessage
	for _, id := range ps.order {
		if ps.state[id] != blobPresent {
			msgs = append(msgs, jsonMessage{Status: "Pull complete", ID: id})
		}
	}
	if job.Result != nil {
		msgs = append(msgs, jsonMessage{Status: "Digest: " + job.Result.Digest})
	}
	status := "Status: Image is up to date for " + ps.ref.String()
	if downloaded && len(job.Blobs) > 0 {
		status = "Status: Downloaded newer image for " + ps.ref.String()
	}
	msgs = append(msgs, jsonMessage{Status: status})
	return ps.send(msgs...)
}

// fail ends the stream with an error line, and returns the error for the
// request's log line.
func (ps *pullStream) fail(msg string) error {
	msg = withoutClientHints(msg)
	_ = ps.send(jsonMessage{ErrorDetail: &jsonError{Message: msg}, Error: msg})
	return fmt.Errorf("pull %s: %s", ps.ref, msg)
}
