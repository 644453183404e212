package provider

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider"
	"github.com/containerprovider/containerprovider/provider/hostfs"
	"github.com/containerprovider/containerprovider/server/listener"
	"github.com/containerprovider/containerprovider/server/middleware"
)

// ContentTypeTar is the content type of image archives and of the files
// copied into a container.
const ContentTypeTar = "application/x-tar"

// The headers that name the image of a streamed save. They come as headers
// when the image is known before the first byte (see SaveStarter), and
// always as trailers once the archive is whole.
const (
	HeaderImageName    = "X-Image-Name"
	HeaderImageVersion = "X-Image-Version"
	HeaderImageDigest  = "X-Image-Digest"
	// HeaderImage is the whole api.Image, as base64 of its JSON (a header
	// holds no newline and, safely, no byte past ASCII).
	HeaderImage = "X-Image"
)

// imageHeader is img as the value of HeaderImage.
func imageHeader(img api.Image) string {
	b, err := json.Marshal(img)
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

// tarContentTypes are the content types a tar body may be sent with.
var tarContentTypes = []string{ContentTypeTar, "application/tar", "application/octet-stream"}

// SaveStarter is what the writer handed to Backend.Save offers besides
// io.Writer: a Save that knows its image before it writes the first byte
// calls BeginSave, so that the response's headers carry the file name
// (Content-Disposition) and the image. A Save that does not call it still
// streams; its headers then carry the file name only when the request
// named the name and the required version.
type SaveStarter interface {
	BeginSave(img api.Image)
}

// save answers POST /v1/images/save with an api.SaveRequest body,
// Save-ContainerImage.
//
// With whatIf, nothing is written: 200 api.SaveResult with whatIf set,
// naming the images the archive would hold.
// With a Path, the archive is written on this host, with the rights of the
// caller of the unix socket (see callerFS): 200 api.SaveResult.
// Without, the archive is the response: 200 application/x-tar, with
// Content-Disposition: attachment; filename="<Name>-<version>.tar", chunked
// and flushed as it goes. Errors before the first byte get the envelope; an
// error after it aborts the connection, so that a client never takes a
// truncated archive for a whole one.
func (s *Server) save(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	var req api.SaveRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.WhatIf {
		res, err := s.backend.PlanSave(r.Context(), req)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, res)
	}
	if req.Path != "" {
		if err := checkHostPath("path", req.Path); err != nil {
			return err
		}
		fsys, err := s.opts.hostFS(r)
		if err != nil {
			return err
		}
		res, err := s.backend.SaveToPath(r.Context(), req, fsys)
		if err != nil {
			return err
		}
		middleware.AddFields(r.Context(), logrus.Fields{"image": res.Image.Name + " " + res.Image.Version, "bytes_saved": res.Size})
		extendWrite(w, r)
		return writeJSON(w, http.StatusOK, res)
	}
	if req.Force {
		return fmt.Errorf("save: force goes with a path: %w", errdefs.ErrInvalidArgument)
	}
	stream := &saveStream{w: w, rc: http.NewResponseController(w), ctx: r.Context(), req: req}
	img, err := s.backend.Save(r.Context(), req, stream)
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
		stream.BeginSave(img)
	}
	h := w.Header()
	h.Set(http.TrailerPrefix+HeaderImageName, img.Name)
	h.Set(http.TrailerPrefix+HeaderImageVersion, img.Version)
	h.Set(http.TrailerPrefix+HeaderImageDigest, img.Digest)
	h.Set(http.TrailerPrefix+HeaderImage, imageHeader(img))
	middleware.AddFields(r.Context(), logrus.Fields{"image": img.Name + " " + img.Version, "bytes_saved": stream.n})
	return nil
}

// saveStream is the writer a streamed save writes its archive into: the
// response, started on the first BeginSave or Write, with the write
// deadline moved before every write (as for the job streams) and a flush
// after each.
type saveStream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	ctx     context.Context
	req     api.SaveRequest
	started bool
	n       int64
}

var _ SaveStarter = (*saveStream)(nil)

// BeginSave implements SaveStarter: it sends the headers for img. Later
// calls do nothing.
func (s *saveStream) BeginSave(img api.Image) {
	if s.started {
		return
	}
	h := s.w.Header()
	setIf(h, HeaderImageName, img.Name)
	setIf(h, HeaderImageVersion, img.Version)
	setIf(h, HeaderImageDigest, img.Digest)
	setIf(h, HeaderImage, imageHeader(img))
	name := ""
	if img.Name != "" && img.Version != "" {
		name = provider.SaveFileName(img.Name, img.Version)
	}
	s.start(name)
}

// start sends the status and the headers, with the file name when known.
func (s *saveStream) start(fileName string) {
	s.started = true
	h := s.w.Header()
	h.Set("Content-Type", ContentTypeTar)
	h.Set("Content-Disposition", contentDisposition(fileName))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	s.extend()
	s.w.WriteHeader(http.StatusOK)
	_ = s.rc.Flush() // a failed flush shows in the next Write
}

// Write implements io.Writer.
func (s *saveStream) Write(p []byte) (int, error) {
	if !s.started {
		name := ""
		if s.req.Name != "" && s.req.RequiredVersion != "" && s.req.ID == "" {
			name = provider.SaveFileName(s.req.Name, s.req.RequiredVersion)
		}
		s.start(name)
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

func (s *saveStream) extend() { extendDeadline(s.ctx, s.rc.SetWriteDeadline, "write") }

// extendDeadline moves a connection deadline to now + StreamWriteWindow. A
// writer without deadlines (an httptest recorder) goes without.
func extendDeadline(ctx context.Context, set func(time.Time) error, which string) {
	if err := set(time.Now().Add(StreamWriteWindow)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		middleware.Log(ctx).WithError(err).Debugf("extending the %s deadline of a stream", which)
	}
}

// contentDisposition is `attachment; filename="<name>"`, or `attachment`
// without a name. A name that is not plain printable ASCII is encoded as
// RFC 2231 says.
func contentDisposition(fileName string) string {
	if fileName == "" {
		return "attachment"
	}
	plain := true
	for _, c := range fileName {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		return `attachment; filename="` + fileName + `"`
	}
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": fileName}); v != "" {
		return v
	}
	return "attachment"
}

// extendWrite moves the write deadline before the answer of a long call (a
// load, a save to a path, a copy): the WriteTimeout started with the
// request, and the call may have outlasted it.
func extendWrite(w http.ResponseWriter, r *http.Request) {
	extendDeadline(r.Context(), http.NewResponseController(w).SetWriteDeadline, "write")
}

func setIf(h http.Header, k, v string) {
	if v != "" {
		h.Set(k, v)
	}
}

// load answers POST /v1/images/load, Install-ContainerImage -Path:
//
//	/v1/images/load?path=/abs/file.tar   the archive is a file on this host, read with the caller's rights (see callerFS)
//	/v1/images/load                      the archive is the body (application/x-tar)
//
// 200 is an api.LoadResult. A bad archive is 400 and changes nothing; a
// body over the archive cap (MaxArchiveSize by default) is 413.
func (s *Server) load(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r, paramPath)
	if err != nil {
		return err
	}
	var res api.LoadResult
	if q.has(paramPath) {
		path := q.Get(paramPath)
		if err := checkHostPath(paramPath, path); err != nil {
			return err
		}
		if r.ContentLength > 0 {
			return fmt.Errorf("load: a path and a body exclude each other: %w", errdefs.ErrInvalidArgument)
		}
		fsys, err := s.opts.hostFS(r)
		if err != nil {
			return err
		}
		// Opened with the caller's rights, without blocking, and checked to
		// be a regular file before the backend takes any lock.
		f, err := fsys.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if res, err = s.backend.LoadFile(r.Context(), f, path); err != nil {
			return err
		}
	} else {
		body, err := s.tarBody(w, r)
		if err != nil {
			return err
		}
		if res, err = s.backend.Load(r.Context(), body); err != nil {
			return body.cause(err)
		}
	}
	res.Images = nonNil(res.Images)
	middleware.AddFields(r.Context(), logrus.Fields{"images": len(res.Images)})
	extendWrite(w, r)
	return writeJSON(w, http.StatusOK, res)
}

// callerFS is the host file system as the caller of r sees it. A path on
// the daemon's host is honoured only on the unix socket, whose peer is
// known: it is opened with the peer's own uid, gid and groups (see package
// hostfs). Over TCP the caller is only known to hold the token, and the
// daemon opens no path for it.
func callerFS(r *http.Request) (hostfs.FS, error) {
	peer, ok := listener.PeerOf(r.Context())
	if !ok {
		return nil, fmt.Errorf("a path on the daemon's host is only honoured on providerd's unix socket; send the archive in the request instead (without --remote-path): %w", errdefs.ErrPermissionDenied)
	}
	groups, err := hostfs.ProcessGroups(peer.PID, peer.UID)
	if err != nil {
		return nil, err
	}
	return hostfs.AsUser(hostfs.User{UID: peer.UID, GID: peer.GID, Groups: groups})
}

// checkHostPath refuses a path on the daemon's host that is empty or
// relative: a remote client cannot know the daemon's working directory.
func checkHostPath(what, path string) error {
	if path == "" {
		return fmt.Errorf("%s: empty: %w", what, errdefs.ErrInvalidArgument)
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%s %q: want an absolute path on the daemon's host: %w", what, path, errdefs.ErrInvalidArgument)
	}
	return nil
}

// archiveBody is a tar request body: capped, and moving the read deadline
// before every read, since a large archive may take longer than the
// server's ReadTimeout.
type archiveBody struct {
	body *middleware.LimitedBody
	rc   *http.ResponseController
	ctx  context.Context
	n    int64
}

// tarBody checks the content type of a tar body and returns it, capped at
// the server's archive size. An empty body or one already over the cap is
// refused before any call.
func (s *Server) tarBody(w http.ResponseWriter, r *http.Request) (*archiveBody, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || !containsFold(tarContentTypes, mt) {
		return nil, fmt.Errorf("request body: content type %q, want %s: %w", ct, ContentTypeTar, errdefs.ErrInvalidArgument)
	}
	body := middleware.LimitBody(w, r, s.opts.maxArchive)
	if body.Exceeded() {
		return nil, body.Err()
	}
	if r.ContentLength == 0 {
		return nil, fmt.Errorf("request body: empty, want a tar archive: %w", errdefs.ErrInvalidArgument)
	}
	return &archiveBody{body: body, rc: http.NewResponseController(w), ctx: r.Context()}, nil
}

// Read implements io.Reader.
func (b *archiveBody) Read(p []byte) (int, error) {
	extendDeadline(b.ctx, b.rc.SetReadDeadline, "read")
	n, err := b.body.Read(p)
	b.n += int64(n)
	return n, err
}

// cause gives 413 when the body went over the cap, whatever the consumer
// wrapped the read error in.
func (b *archiveBody) cause(err error) error { return b.body.Cause(err) }

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
