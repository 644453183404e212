package docker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// contentTypeTar is the content type of `docker save` and `docker load`
// archives.
const contentTypeTar = "application/x-tar"

// saveImages is `docker save`: GET /images/get?names=... or GET
// /images/{name}/get. The image is resolved as for inspect, and the
// provider's archive of it (an OCI layout that is also a `docker save`
// archive, parents included, each image tagged repository:version) is the
// response, 200 application/x-tar, streamed as it is written. One image
// per archive: several names are 501. Errors before the first byte get
// Docker's {"message": ...}; an error after it aborts the connection, so
// that the CLI never takes a truncated archive for a whole one.
func (s *Server) saveImages(w http.ResponseWriter, r *http.Request) error {
	names := r.URL.Query()["names"]
	if name, ok := mux.Vars(r)[varName]; ok {
		names = []string{name}
	}
	switch {
	case len(names) == 0:
		return newError(errdefs.ErrInvalidArgument, "no image to save: give names=<image>")
	case len(names) > 1:
		return newError(errdefs.ErrNotImplemented, "saving %d images into one archive is not supported by providerd: save one image per archive", len(names))
	}
	imgs, err := s.allImages(r)
	if err != nil {
		return err
	}
	res, err := resolveImage(imgs, names[0])
	if err != nil {
		return err
	}
	stream := &saveStream{w: w, rc: http.NewResponseController(w), ctx: r.Context()}
	img, err := s.backend.Save(r.Context(), api.SaveRequest{ID: res.img.Digest}, stream)
	if err != nil {
		if !stream.started && !middleware.HeaderWritten(w) {
			return err
		}
		// The status is 200 and part of the archive may be out: only
		// cutting the connection tells the client that it is not whole.
		middleware.SetError(r.Context(), err)
		middleware.Log(r.Context()).WithError(err).WithField("bytes", stream.n).Error("save stream aborted")
		panic(http.ErrAbortHandler)
	}
	if !stream.started {
		stream.start()
	}
	middleware.AddFields(r.Context(), logrus.Fields{"image": img.Name + " " + img.Version, "bytes_saved": stream.n})
	return nil
}

// saveStream is the response a save writes its archive into: started on
// the first Write, with the write deadline moved before every write (as
// for the pull stream) and a flush after each. A save lasts as long as its
// archive, so it is not bound by the http.Server's WriteTimeout.
type saveStream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	ctx     context.Context
	started bool
	n       int64
}

// start sends the status and the headers.
func (s *saveStream) start() {
	s.started = true
	h := s.w.Header()
	h.Set("Content-Type", contentTypeTar)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	s.extend()
	s.w.WriteHeader(http.StatusOK)
	_ = s.rc.Flush() // a failed flush shows in the next Write
}

// Write implements io.Writer.
func (s *saveStream) Write(p []byte) (int, error) {
	if !s.started {
		s.start()
	}
	if err := s.ctx.Err(); err != nil {
		return 0, fmt.Errorf("save stream: the client went away: %w", err)
	}
	s.extend()
	n, err := s.w.Write(p)
	s.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("save stream: writing after %d bytes: %w", s.n, err)
	}
	if err := s.rc.Flush(); err != nil {
		return n, fmt.Errorf("save stream: flushing after %d bytes: %w", s.n, err)
	}
	return n, nil
}

// extend moves the write deadline; a writer without deadlines (an
// httptest recorder) streams without them.
func (s *saveStream) extend() {
	_ = s.rc.SetWriteDeadline(time.Now().Add(StreamWriteWindow))
}

// loadMessage is one line of the stream of POST /images/load.
type loadMessage struct {
	Stream string `json:"stream"`
}

// loadImages is `docker load`: the body is an archive (a `docker save`
// tar as saveImages writes it, or an OCI layout tar, possibly gzipped)
// that the provider's Load verifies and installs, parents first. The
// answer is a jsonmessage stream with "Loaded image: repo:tag" for the
// image the archive was saved for, the last of the archive, as the daemon
// prints one line per image that `docker save` was given; the parents the
// archive carries along load silently. quiet changes nothing, since no
// progress is sent. The read deadline moves while the body arrives, so a
// large archive is bound by the pace of its bytes, not by the
// http.Server's ReadTimeout.
func (s *Server) loadImages(w http.ResponseWriter, r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := strings.Cut(ct, ";"); strings.TrimSpace(strings.ToLower(mt)) == "application/json" {
			return newError(errdefs.ErrInvalidArgument, "docker load wants a tar archive, not %s", ct)
		}
	}
	body := &deadlineReader{r: r.Body, rc: http.NewResponseController(w)}
	res, err := s.backend.Load(r.Context(), body)
	if err != nil {
		return err
	}
	var msgs []loadMessage
	if n := len(res.Images); n > 0 {
		img := res.Images[n-1]
		msgs = append(msgs, loadMessage{Stream: "Loaded image: " + img.Repository + ":" + img.Version + "\n"})
		middleware.AddFields(r.Context(), logrus.Fields{"image": img.Name + " " + img.Version, "images_loaded": n})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	for _, m := range msgs {
		line, err := marshal(m)
		if err != nil {
			return fmt.Errorf("encoding the response: %w", err)
		}
		_, _ = w.Write(line)
	}
	return nil
}

// deadlineReader moves the read deadline of the connection before every
// read of a request body.
type deadlineReader struct {
	r  io.Reader
	rc *http.ResponseController
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	_ = d.rc.SetReadDeadline(time.Now().Add(StreamWriteWindow))
	return d.r.Read(p)
}
