package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/store/content"
)

// copyBufferSize is the size of the buffers the provider reads blobs
// through (a re-verify, a commit, a load); aligned, so that the store reads
// and writes them straight to disk. Downloads copy through
// content.CopyAhead's own buffers.
const copyBufferSize = 1 << 20

var bufferPool = sync.Pool{New: func() any { b := content.AlignedBuffer(copyBufferSize); return &b }}

func (p *Provider) buffer() *[]byte         { return bufferPool.Get().(*[]byte) }
func (p *Provider) releaseBuffer(b *[]byte) { bufferPool.Put(b) }

// blobRef is the ingest ref of a blob download. Every job uses the same ref
// for a digest, so one resumes the data another left.
func blobRef(d digest.Digest) string { return "blob-" + d.String() }

// retryPolicy bounds the retries of a blob download: the wait starts at
// initial and doubles up to max; the download gives up after attempts
// failures in a row without a byte of progress, or when no byte arrived for
// window.
type retryPolicy struct {
	initial, max time.Duration
	attempts     int
	window       time.Duration
}

var defaultRetryPolicy = retryPolicy{
	initial:  100 * time.Millisecond,
	max:      5 * time.Second,
	attempts: 10,
	window:   2 * time.Minute,
}

// flight is one download of a blob, shared by every job that needs the
// blob while it runs.
type flight struct {
	dgst   digest.Digest
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed
	// waiters counts the jobs waiting; guarded by Provider.flightMu. The
	// download stops when the last one leaves.
	waiters int

	mu        sync.Mutex
	offset    int64
	listeners map[int]flightListener
	nextID    int
}

// flightListener is a job that waits for a flight: told of the bytes on
// disk, and of each retry.
type flightListener struct {
	progress func(int64)
	retry    func(blobRetry)
}

// blobRetry is a failed attempt of a blob download that is tried again.
type blobRetry struct {
	// Attempt is the number of the next attempt, of at most Attempts
	// without progress.
	Attempt, Attempts int
	// Reason is why the last attempt failed.
	Reason error
	// Delay is the wait before the next attempt.
	Delay time.Duration
}

// retrying tells every listener of a retry.
func (f *flight) retrying(r blobRetry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range f.listeners {
		if l.retry != nil {
			l.retry(r)
		}
	}
}

// report tells every listener that offset bytes are on disk.
func (f *flight) report(offset int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offset = offset
	for _, l := range f.listeners {
		l.progress(offset)
	}
}

func (f *flight) listen(l flightListener) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.nextID
	f.nextID++
	f.listeners[id] = l
	if f.offset > 0 {
		l.progress(f.offset)
	}
	return id
}

func (f *flight) unlisten(id int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.listeners, id)
}

// fetchBlob makes sure blob desc is committed in the content store,
// downloading it from src (repository repo) unless a download of the same
// digest is already running, in which case it waits for that one. progress
// is called with the bytes on disk as they grow. When ctx ends, fetchBlob
// returns ctx's error; the download itself stops when no caller waits for
// it any more, and keeps its data in the ingest for a resume.
func (p *Provider) fetchBlob(ctx context.Context, src Source, repo string, desc ocispec.Descriptor, l flightListener) error {
	p.flightMu.Lock()
	f := p.flights[desc.Digest]
	if f == nil {
		fctx, cancel := context.WithCancel(p.jobCtx)
		f = &flight{dgst: desc.Digest, ctx: fctx, cancel: cancel, done: make(chan struct{}), listeners: map[int]flightListener{}}
		p.flights[desc.Digest] = f
		p.running.Add(1)
		go p.runFlight(f, src, repo, desc)
	}
	f.waiters++
	p.flightMu.Unlock()

	id := f.listen(l)
	defer f.unlisten(id)
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		p.flightMu.Lock()
		f.waiters--
		if f.waiters == 0 {
			f.cancel()
			if p.flights[desc.Digest] == f {
				delete(p.flights, desc.Digest)
			}
		}
		p.flightMu.Unlock()
		return ctx.Err()
	}
}

func (p *Provider) runFlight(f *flight, src Source, repo string, desc ocispec.Descriptor) {
	defer p.running.Done()
	err := p.download(f.ctx, f, src, repo, desc)
	p.flightMu.Lock()
	if p.flights[desc.Digest] == f {
		delete(p.flights, desc.Digest)
	}
	p.flightMu.Unlock()
	f.err = err
	f.cancel()
	close(f.done)
}

// download writes blob desc into the content store: it resumes the ingest
// at its offset, asks src for the rest with a Range, and commits with the
// size and digest of desc. A dropped connection or a busy ingest is retried
// with backoff from the new offset. A digest mismatch is not retried (the
// store has discarded the data), except once when the data came partly
// from an earlier run, which may have been corrupted on disk, and, from a
// source with mirrors, when a mirror served some of it: that mirror is
// passed over and the blob downloaded again from the next one or the
// source's location.
func (p *Provider) download(ctx context.Context, f *flight, src Source, repo string, desc ocispec.Descriptor) error {
	d := desc.Digest
	log := p.log.WithField("digest", d).WithField("repository", repo)
	var sess *blobSession
	if es, ok := src.(*endpointSource); ok {
		sess = es.session(repo, d)
		src = sess
	}
	rp := p.retry
	delay := rp.initial
	failures := 0
	lastProgress := time.Now()
	restarted := false
	for {
		progressed, resumed, err := p.downloadOnce(ctx, f, src, repo, desc)
		if err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if errors.Is(err, errDigestMismatch) {
			if sess != nil {
				if refused := sess.refuse(err); len(refused) > 0 {
					f.retrying(blobRetry{Attempt: failures + 1, Attempts: rp.attempts,
						Reason: fmt.Errorf("mirror %s served bytes that do not match the digest: refused; fetching it from the next mirror or the source's location", strings.Join(refused, ", "))})
					continue
				}
			}
			if resumed > 0 && !restarted {
				restarted = true
				log.WithError(err).Warn("resumed blob does not match its digest: downloading it again from the start")
				continue
			}
			return err
		}
		if !retryable(err) {
			return err
		}
		if progressed {
			failures, delay, lastProgress = 0, rp.initial, time.Now()
		}
		failures++
		if failures >= rp.attempts || time.Since(lastProgress) > rp.window {
			return fmt.Errorf("gave up after %d attempts without progress: %w", failures, err)
		}
		log.WithError(err).WithField("retry_in", delay).Warn("blob download interrupted: retrying")
		f.retrying(blobRetry{Attempt: failures + 1, Attempts: rp.attempts, Reason: err, Delay: delay})
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		delay = min(delay*2, rp.max)
	}
}

// errDigestMismatch marks a commit refused because the data does not match
// the digest.
var errDigestMismatch = errors.New("downloaded bytes do not match the digest")

// errWrite marks a failure of the local store, which retrying does not
// help.
type errWrite struct{ err error }

func (e errWrite) Error() string { return e.err.Error() }
func (e errWrite) Unwrap() error { return e.err }

// retryable reports whether a download that failed with err may succeed
// if tried again.
func retryable(err error) bool {
	var we errWrite
	switch {
	case errors.As(err, &we),
		errdefs.IsNotFound(err),
		errdefs.IsInvalidArgument(err),
		errdefs.IsUnauthenticated(err),
		errdefs.IsPermissionDenied(err),
		errdefs.IsFailedPrecondition(err),
		errdefs.IsNotImplemented(err),
		errdefs.IsTooLarge(err),
		errdefs.IsInsufficientStorage(err):
		return false
	}
	return true
}

// downloadOnce makes one attempt: it reports whether bytes were written and
// at which offset the ingest resumed.
func (p *Provider) downloadOnce(ctx context.Context, f *flight, src Source, repo string, desc ocispec.Descriptor) (progressed bool, resumed int64, err error) {
	d, size := desc.Digest, desc.Size
	w, err := p.cs.Writer(ctx, blobRef(d), content.WithExpected(d), content.WithTotal(size))
	if errdefs.IsAlreadyExists(err) {
		f.report(size)
		return false, 0, nil
	}
	if err != nil {
		if errdefs.IsUnavailable(err) {
			return false, 0, err // another writer still holds the ingest
		}
		return false, 0, errWrite{err}
	}
	resumed = w.Offset()
	if resumed > size {
		if err := w.Truncate(0); err != nil {
			w.Close()
			return false, resumed, errWrite{err}
		}
	}
	f.report(w.Offset())
	start := w.Offset()
	err = p.copyBlob(ctx, w, f, src, repo, desc)
	progressed = w.Offset() > start
	if err != nil {
		if cerr := w.Close(); cerr != nil {
			p.log.WithError(cerr).WithField("digest", d).Warn("ingest not closed cleanly")
		}
		return progressed, resumed, err
	}
	if err := w.Commit(ctx, size, d); err != nil {
		if errdefs.IsAlreadyExists(err) {
			f.report(size)
			return progressed, resumed, nil
		}
		if errdefs.IsFailedPrecondition(err) {
			return progressed, resumed, fmt.Errorf("%w: %w", errDigestMismatch, err)
		}
		return progressed, resumed, errWrite{storageError(err, p.root, "blob "+d.String())}
	}
	f.report(size)
	return progressed, resumed, nil
}

// copyBlob asks src for the bytes of desc from w's offset on and writes
// them to w until the blob is whole. A connection that ends early is
// io.ErrUnexpectedEOF.
func (p *Provider) copyBlob(ctx context.Context, w content.Writer, f *flight, src Source, repo string, desc ocispec.Descriptor) error {
	d, size := desc.Digest, desc.Size
	off := w.Offset()
	if off >= size {
		return nil
	}
	rc, err := src.Blob(ctx, repo, d, off)
	if err != nil {
		if errdefs.IsOutOfRange(err) && off > 0 {
			// The source does not have the bytes our ingest claims:
			// start the blob over.
			if terr := w.Truncate(0); terr != nil {
				return errWrite{terr}
			}
			return fmt.Errorf("range from %d refused: %w", off, errdefs.ErrUnavailable)
		}
		return err
	}
	defer rc.Close()
	// The network fills the next chunks while the ingest hashes one and
	// the disk writes another. A failed write closes rc, which ends a read
	// in progress.
	pw := progressWriter{w: w, f: f, m: &p.metrics, root: p.root}
	var dst io.Writer = pw
	if cw, ok := w.(content.ChunkWriter); ok {
		dst = chunkProgressWriter{progressWriter: pw, cw: cw}
	}
	_, err = content.CopyAhead(dst,
		struct {
			io.Reader
			io.Closer
		}{io.LimitReader(rc, size-off), rc}, nil, off)
	var we errWrite
	switch {
	case errors.As(err, &we):
		return err
	case err == nil || errors.Is(err, io.ErrUnexpectedEOF):
		if w.Offset() < size {
			return fmt.Errorf("connection ended at %d of %d bytes: %w", w.Offset(), size, io.ErrUnexpectedEOF)
		}
		return nil
	default:
		return fmt.Errorf("blob %s: read at %d of %d bytes: %w", d, w.Offset(), size, err)
	}
}

// progressWriter writes a download into its ingest, counts the bytes and
// reports the offset to the flight's listeners after each chunk. A failure
// of the store is an errWrite.
type progressWriter struct {
	w    content.Writer
	f    *flight
	m    *metrics
	root string
}

func (pw progressWriter) Write(b []byte) (int, error) { return pw.done(pw.w.Write(b)) }

// done counts and reports the n bytes a write took, and classes its error.
func (pw progressWriter) done(n int, err error) (int, error) {
	if n > 0 {
		pw.m.addBytes(int64(n))
		pw.f.report(pw.w.Offset())
	}
	if err != nil {
		return n, errWrite{storageError(err, pw.root, "blob "+pw.f.dgst.String())}
	}
	return n, nil
}

// chunkProgressWriter is a progressWriter over an ingest that is a
// content.ChunkWriter: CopyAhead then hashes a chunk while the disk writes
// another.
type chunkProgressWriter struct {
	progressWriter
	cw content.ChunkWriter
}

func (pw chunkProgressWriter) WriteChunk(b []byte) (int, error) {
	n, err := pw.cw.WriteChunk(b)
	return pw.done(n, err)
}

func (pw chunkProgressWriter) HashChunk(b []byte) { pw.cw.HashChunk(b) }
