package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider/mirror"
)

// This file is a source's registry mirrors (api.SourceMirror): pull-through
// caches and copies of the registry at the source's location, which the
// provider reads before it, as containerd reads the hosts of a hosts.toml.
// (provider/mirror and mirrors.go are something else: providerd's own index
// of each source.)
//
// What a mirror may be asked follows its capabilities:
//
//   - pull: blobs and manifests by digest are asked of the mirrors first,
//     in order, then of the location. Their bytes are verified against the
//     digest before anything is committed, so a mirror cannot change what
//     is installed; a mirror whose bytes do not match is logged as a
//     security event and passed over for that blob.
//   - resolve: tags and the index's entries come from the location; only
//     while it is unreachable (a transport error, a 5xx, a time-out) are
//     they read from a mirror, and the index says so (its State.Origin),
//     which find prints. containerd asks a resolve host before the
//     upstream; this provider does not, because an operator's cache may
//     serve a tag that has moved, and the location is the authority on
//     tags. An install still asks a pull and resolve mirror for the
//     manifest by its tag (ManifestAtTag), taking the answer only when it
//     is the digest the location's index names: a pull-through cache then
//     holds the tag, and can list it while the location is down.
//
// A mirror that fails (any error, a 404 included, or no answer within the
// mirror time-out) is passed over for the blob or manifest concerned; one
// that is unreachable is passed over for every request for a while
// (mirrorBackoff), so that a dead cache costs one time-out, not one per
// blob.

// DefaultMirrorTimeout bounds the wait for a mirror's answer, and for each
// read of a blob's body from it, before the next mirror or the location is
// asked.
const DefaultMirrorTimeout = 10 * time.Second

// mirrorBackoff is how long an unreachable mirror is passed over.
const mirrorBackoff = 30 * time.Second

// maxMirrors bounds a source's mirrors.
const maxMirrors = 16

// endpointSource is a source with registry mirrors: its location (the
// upstream) and each mirror are Sources of their own.
type endpointSource struct {
	upstream Source
	mirrors  []*endpoint
	timeout  time.Duration
	log      logrus.FieldLogger
}

// endpoint is one mirror of a source.
type endpoint struct {
	location      string
	namespace     string // prefix of the repositories at the mirror
	src           Source
	pull, resolve bool

	mu        sync.Mutex
	downUntil time.Time
}

// pinger is a Source that can tell whether its registry answers
// (source.Client.Ping).
type pinger interface {
	Ping(ctx context.Context) error
}

func newEndpointSource(upstream Source, mirrors []*endpoint, timeout time.Duration, log logrus.FieldLogger) *endpointSource {
	if timeout <= 0 {
		timeout = DefaultMirrorTimeout
	}
	return &endpointSource{upstream: upstream, mirrors: mirrors, timeout: timeout, log: log.WithField("source", upstream.Name())}
}

func (e *endpointSource) Name() string { return e.upstream.Name() }

// repository is the name of the source's repository repo at the mirror.
func (ep *endpoint) repository(repo string) string {
	if ep.namespace == "" {
		return repo
	}
	return ep.namespace + "/" + repo
}

// available reports whether ep is not being passed over as unreachable.
func (ep *endpoint) available() bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return time.Now().After(ep.downUntil)
}

// failed records that ep failed with err; an unreachable mirror is passed
// over for mirrorBackoff.
func (e *endpointSource) failed(ctx context.Context, ep *endpoint, what string, err error) {
	log := e.log.WithField("mirror", ep.location).WithError(err)
	if unreachable(ctx, err) {
		ep.mu.Lock()
		ep.downUntil = time.Now().Add(mirrorBackoff)
		ep.mu.Unlock()
		log.WithField("retry_after", mirrorBackoff).Warn("mirror unreachable: asking the next mirror or the source's location")
		return
	}
	log.WithField("object", what).Info("mirror failed: asking the next mirror or the source's location")
}

// unreachable reports whether err says that the registry did not answer
// (a transport error, a 5xx, a time-out), rather than answered no; false
// when ctx itself ended.
func unreachable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	return errdefs.IsUnavailable(err) || errors.Is(err, context.DeadlineExceeded)
}

// securityEvent logs that a mirror served bytes that do not match their
// digest: a broken or a hostile mirror. They were not committed.
func (e *endpointSource) securityEvent(ep *endpoint, repo, what string, err error) {
	e.log.WithFields(logrus.Fields{
		"event":      "security",
		"mirror":     ep.location,
		"repository": repo,
		"object":     what,
	}).WithError(err).Error("mirror served bytes that do not match their digest: refused, not committed")
}

// Manifest reads a manifest by digest from the pull mirrors, then the
// location; by tag from the location, then, while it is unreachable, the
// resolve mirrors.
func (e *endpointSource) Manifest(ctx context.Context, repo, reference string) (ocispec.Descriptor, []byte, error) {
	if _, err := digest.Parse(reference); err == nil {
		for _, ep := range e.mirrors {
			if !ep.pull || !ep.available() {
				continue
			}
			desc, b, err := e.mirrorManifest(ctx, ep, repo, reference)
			if err == nil {
				return desc, b, nil
			}
			if ctx.Err() != nil {
				return ocispec.Descriptor{}, nil, err
			}
			e.failed(ctx, ep, "manifest "+reference, err)
		}
		return e.upstream.Manifest(ctx, repo, reference)
	}
	desc, b, err := e.upstream.Manifest(ctx, repo, reference)
	if err == nil || !unreachable(ctx, err) {
		return desc, b, err
	}
	errs := []error{err}
	for _, ep := range e.mirrors {
		if !ep.resolve || !ep.available() {
			continue
		}
		desc, b, merr := e.mirrorManifest(ctx, ep, repo, reference)
		if merr == nil {
			e.log.WithField("mirror", ep.location).WithField("repository", repo).WithField("tag", reference).
				Warn("the source's location is unreachable: the tag was resolved by a mirror")
			return desc, b, nil
		}
		if ctx.Err() != nil {
			return ocispec.Descriptor{}, nil, merr
		}
		e.failed(ctx, ep, "manifest "+reference, merr)
		errs = append(errs, merr)
	}
	return ocispec.Descriptor{}, nil, errors.Join(errs...)
}

// ManifestAtTag fetches the manifest that the source's index says tag
// points at (dgst). The first mirror that may both pull and resolve is
// asked for it by its tag, so that a pull-through cache records the tag
// as well as the content, and can answer for it while the location is
// unreachable; its answer is taken only when it is dgst, since the index
// is the authority on tags. Otherwise, and when no such mirror answers,
// the manifest is fetched by digest, as Manifest does.
func (e *endpointSource) ManifestAtTag(ctx context.Context, repo, tag string, dgst digest.Digest) (ocispec.Descriptor, []byte, error) {
	for _, ep := range e.mirrors {
		if !ep.pull || !ep.resolve || !ep.available() {
			continue
		}
		desc, b, err := e.mirrorManifest(ctx, ep, repo, tag)
		if err != nil {
			if ctx.Err() != nil {
				return ocispec.Descriptor{}, nil, err
			}
			e.failed(ctx, ep, "manifest "+tag, err)
			continue
		}
		if desc.Digest == dgst {
			return desc, b, nil
		}
		e.log.WithField("mirror", ep.location).WithField("repository", repo).WithField("tag", tag).
			WithField("mirror_digest", desc.Digest).WithField("digest", dgst).
			Warn("the mirror's tag points elsewhere than the source's: fetching the source's manifest by digest")
		break
	}
	return e.Manifest(ctx, repo, dgst.String())
}

// mirrorManifest asks ep for a manifest within the mirror time-out.
func (e *endpointSource) mirrorManifest(ctx context.Context, ep *endpoint, repo, reference string) (ocispec.Descriptor, []byte, error) {
	mctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	desc, b, err := ep.src.Manifest(mctx, ep.repository(repo), reference)
	if err != nil {
		if errdefs.IsFailedPrecondition(err) {
			// The manifest's bytes do not match the digest asked for
			// or the one the mirror declared.
			e.securityEvent(ep, repo, "manifest "+reference, err)
		}
		if ctx.Err() == nil && mctx.Err() != nil {
			err = fmt.Errorf("no answer in %s: %w: %w", e.timeout, err, errdefs.ErrUnavailable)
		}
		return ocispec.Descriptor{}, nil, fmt.Errorf("mirror %s: %w", ep.location, err)
	}
	return desc, b, nil
}

// Blob opens a blob from the first pull mirror that has it, else from the
// location. A download that must tell a mismatch back uses a blobSession.
func (e *endpointSource) Blob(ctx context.Context, repo string, dgst digest.Digest, offset int64) (io.ReadCloser, error) {
	return e.session(repo, dgst).Blob(ctx, repo, dgst, offset)
}

// Sync syncs the index from the location. When the location is
// unreachable and the index holds no whole sync of it, the index is
// crawled from the first resolve mirror that answers, and its State.Origin
// names that mirror; an index that has had a whole sync of the location
// stays (find says it is stale), since a cache may hold only part of the
// source. Once the location answers again, its own index replaces the
// mirror's.
func (e *endpointSource) Sync(ctx context.Context, m *mirror.Mirror) error {
	st, _, err := m.State(ctx)
	if err != nil {
		return err
	}
	if st.Origin != "" {
		if perr := e.ping(ctx); perr != nil {
			if !unreachable(ctx, perr) {
				return perr
			}
			return e.syncFromMirror(ctx, m, perr)
		}
		e.log.WithField("mirror", st.Origin).Info("the source's location answers again: its index replaces the mirror's")
		if err := m.Reset(ctx, mirror.State{}); err != nil {
			return err
		}
		return e.upstream.Sync(ctx, m)
	}
	err = e.upstream.Sync(ctx, m)
	if err == nil || !unreachable(ctx, err) || !e.canResolve() {
		return err
	}
	if st, _, serr := m.State(ctx); serr != nil || st.Complete {
		return err // the location's own index, stale, beats a cache's part of it
	}
	return e.syncFromMirror(ctx, m, err)
}

// ping asks the location whether it answers; a source that cannot ping is
// taken to answer.
func (e *endpointSource) ping(ctx context.Context) error {
	p, ok := e.upstream.(pinger)
	if !ok {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	err := p.Ping(pctx)
	if err != nil && ctx.Err() == nil && pctx.Err() != nil {
		err = fmt.Errorf("no answer in %s: %w: %w", e.timeout, err, errdefs.ErrUnavailable)
	}
	return err
}

func (e *endpointSource) canResolve() bool {
	for _, ep := range e.mirrors {
		if ep.resolve {
			return true
		}
	}
	return false
}

// syncFromMirror crawls the index from the resolve mirrors in order, until
// one sync succeeds; the index follows one mirror at a time (a crawl of
// another starts it over). upErr is why the location was not used.
func (e *endpointSource) syncFromMirror(ctx context.Context, m *mirror.Mirror, upErr error) error {
	errs := []error{upErr}
	for _, ep := range e.mirrors {
		if !ep.resolve {
			continue
		}
		st, _, err := m.State(ctx)
		if err != nil {
			return err
		}
		if st.Origin != ep.location {
			if err := m.Reset(ctx, mirror.State{Mode: mirror.ModeCrawl, Origin: ep.location}); err != nil {
				return err
			}
		}
		err = ep.src.Sync(ctx, m)
		if err == nil {
			e.log.WithField("mirror", ep.location).WithError(upErr).Warn("the source's location is unreachable: its index comes from a mirror")
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		errs = append(errs, fmt.Errorf("mirror %s: %w", ep.location, err))
	}
	return errors.Join(errs...)
}

// Lookup reads a repository from where the index comes from: the location,
// or the mirror the index was crawled from.
func (e *endpointSource) Lookup(ctx context.Context, m *mirror.Mirror, repo string) error {
	st, _, err := m.State(ctx)
	if err != nil {
		return err
	}
	if st.Origin == "" {
		return e.upstream.Lookup(ctx, m, repo)
	}
	for _, ep := range e.mirrors {
		if ep.location == st.Origin {
			return ep.src.Lookup(ctx, m, repo)
		}
	}
	return nil // the next sync replaces an index of a mirror no longer listed
}

// session starts the download of one blob.
func (e *endpointSource) session(repo string, dgst digest.Digest) *blobSession {
	return &blobSession{endpointSource: e, repo: repo, dgst: dgst,
		skip: make([]bool, len(e.mirrors)), served: make([]bool, len(e.mirrors))}
}

// blobSession is the download of one blob from a source with mirrors: it
// remembers which mirrors failed, and which served bytes, so that a digest
// mismatch moves it to the next endpoint. It is a Source whose Blob is the
// session's.
type blobSession struct {
	*endpointSource
	repo string
	dgst digest.Digest

	mu     sync.Mutex
	skip   []bool // mirrors passed over for this blob
	served []bool // mirrors that served bytes since the last mismatch
}

// Blob opens the blob from the first pull mirror not passed over, else
// from the location. The repo and dgst are the session's.
func (s *blobSession) Blob(ctx context.Context, _ string, _ digest.Digest, offset int64) (io.ReadCloser, error) {
	for i, ep := range s.mirrors {
		if !ep.pull || s.skipped(i) || !ep.available() {
			continue
		}
		rc, err := s.openMirror(ctx, i, offset)
		if err == nil {
			return rc, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		s.pass(i)
		s.failed(ctx, ep, "blob "+s.dgst.String(), err)
	}
	return s.upstream.Blob(ctx, s.repo, s.dgst, offset)
}

func (s *blobSession) skipped(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skip[i]
}

func (s *blobSession) pass(i int) {
	s.mu.Lock()
	s.skip[i] = true
	s.mu.Unlock()
}

// refuse is told that the bytes of the blob did not match its digest. It
// logs a security event for each mirror that served some of them, passes
// over those mirrors, and returns their locations: none when no mirror
// did, so that another try would get the same bytes.
func (s *blobSession) refuse(err error) []string {
	s.mu.Lock()
	var culprits []*endpoint
	for i, served := range s.served {
		if served {
			culprits = append(culprits, s.mirrors[i])
			s.skip[i], s.served[i] = true, false
		}
	}
	s.mu.Unlock()
	locs := make([]string, 0, len(culprits))
	for _, ep := range culprits {
		s.securityEvent(ep, s.repo, "blob "+s.dgst.String(), err)
		locs = append(locs, ep.location)
	}
	return locs
}

// openMirror opens the blob from mirror i. The mirror must answer, and
// then send each next byte, within the mirror time-out; a mirror that
// stalls is passed over for the blob.
func (s *blobSession) openMirror(ctx context.Context, i int, offset int64) (io.ReadCloser, error) {
	ep := s.mirrors[i]
	ctx, cancel := context.WithCancel(ctx)
	w := &watchdog{cancel: cancel, timeout: s.timeout}
	w.timer = time.AfterFunc(s.timeout, w.fire)
	rc, err := ep.src.Blob(ctx, ep.repository(s.repo), s.dgst, offset)
	if err != nil {
		w.stop()
		if w.fired.Load() {
			err = fmt.Errorf("no answer in %s: %w: %w", s.timeout, err, errdefs.ErrUnavailable)
		}
		return nil, fmt.Errorf("mirror %s: %w", ep.location, err)
	}
	s.mu.Lock()
	s.served[i] = true
	s.mu.Unlock()
	return &watchedReader{rc: rc, w: w, stalled: func() { s.pass(i) }, location: ep.location}, nil
}

// watchdog cancels a mirror request whose next byte does not come within
// timeout.
type watchdog struct {
	timer   *time.Timer
	cancel  context.CancelFunc
	timeout time.Duration
	fired   atomic.Bool
}

func (w *watchdog) fire() {
	w.fired.Store(true)
	w.cancel()
}

func (w *watchdog) stop() {
	w.timer.Stop()
	w.cancel()
}

// watchedReader is a mirror's blob body under a watchdog.
type watchedReader struct {
	rc       io.ReadCloser
	w        *watchdog
	stalled  func()
	location string
}

func (r *watchedReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF && r.w.fired.Load() {
		r.stalled()
		return n, fmt.Errorf("mirror %s: no byte for %s: %w", r.location, r.w.timeout, errdefs.ErrUnavailable)
	}
	if n > 0 {
		r.w.timer.Reset(r.w.timeout)
	}
	return n, err
}

func (r *watchedReader) Close() error {
	r.w.stop()
	return r.rc.Close()
}

// mirrorSettings is the api.Source of mirror m of source s, for the
// source factory: the source's name, the mirror's location and
// credentials.
func mirrorSettings(s api.Source, m api.SourceMirror) api.Source {
	return api.Source{Name: s.Name, Location: m.Location, Insecure: m.Insecure, Username: m.Username, Password: m.Password}
}
