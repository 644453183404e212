package provider

import (
	"bytes"
	"context"
	"fmt"
	"hash"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/content/contenttest"
)

// memStore is a content.Store in memory, for the tests that measure the
// provider's own costs: the local store pays two fsyncs and a dozen file
// operations per blob, which a test of 10,000 blobs would mostly measure.
// It passes the content store conformance suite.
type memStore struct {
	mu      sync.Mutex
	blobs   map[digest.Digest]memBlob
	ingests map[string]*memIngest
	held    map[string]bool
}

type memBlob struct {
	data    []byte
	created time.Time
}

type memIngest struct {
	data    []byte
	total   int64
	started time.Time
	updated time.Time
}

func newMemStore() *memStore {
	return &memStore{blobs: map[digest.Digest]memBlob{}, ingests: map[string]*memIngest{}, held: map[string]bool{}}
}

func TestMemStoreConformance(t *testing.T) {
	contenttest.RunTestSuite(t, func(*testing.T) content.Store { return newMemStore() })
}

func (s *memStore) Info(ctx context.Context, d digest.Digest) (content.Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[d]
	if !ok {
		return content.Info{}, fmt.Errorf("content %s: %w", d, errdefs.ErrNotFound)
	}
	return content.Info{Digest: d, Size: int64(len(b.data)), CreatedAt: b.created}, nil
}

func (s *memStore) Walk(ctx context.Context, fn content.WalkFunc) error {
	s.mu.Lock()
	infos := make([]content.Info, 0, len(s.blobs))
	for d, b := range s.blobs {
		infos = append(infos, content.Info{Digest: d, Size: int64(len(b.data)), CreatedAt: b.created})
	}
	s.mu.Unlock()
	for _, i := range infos {
		if err := fn(i); err != nil {
			return err
		}
	}
	return nil
}

func (s *memStore) Delete(ctx context.Context, d digest.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[d]; !ok {
		return fmt.Errorf("content %s: %w", d, errdefs.ErrNotFound)
	}
	delete(s.blobs, d)
	return nil
}

type memReader struct {
	*bytes.Reader
}

func (memReader) Close() error { return nil }

func (s *memStore) ReaderAt(ctx context.Context, d digest.Digest) (content.ReaderAt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[d]
	if !ok {
		return nil, fmt.Errorf("content %s: %w", d, errdefs.ErrNotFound)
	}
	return memReader{bytes.NewReader(b.data)}, nil
}

func (s *memStore) Status(ctx context.Context, ref string) (content.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.ingests[ref]
	if !ok {
		return content.Status{}, fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
	}
	return content.Status{Ref: ref, Offset: int64(len(in.data)), Total: in.total, StartedAt: in.started, UpdatedAt: in.updated}, nil
}

func (s *memStore) ListStatuses(ctx context.Context) ([]content.Status, error) {
	s.mu.Lock()
	refs := make([]string, 0, len(s.ingests))
	for r := range s.ingests {
		refs = append(refs, r)
	}
	s.mu.Unlock()
	var out []content.Status
	for _, r := range refs {
		if st, err := s.Status(ctx, r); err == nil {
			out = append(out, st)
		}
	}
	return out, nil
}

func (s *memStore) Abort(ctx context.Context, ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[ref] {
		return fmt.Errorf("ingest %q: %w", ref, errdefs.ErrUnavailable)
	}
	if _, ok := s.ingests[ref]; !ok {
		return fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
	}
	delete(s.ingests, ref)
	return nil
}

func (s *memStore) Writer(ctx context.Context, ref string, opts ...content.WriterOpt) (content.Writer, error) {
	var o content.WriterOpts
	for _, opt := range opts {
		opt(&o)
	}
	if ref == "" {
		return nil, fmt.Errorf("ingest ref: empty: %w", errdefs.ErrInvalidArgument)
	}
	alg := digest.Canonical
	if o.Expected != "" {
		if err := o.Expected.Validate(); err != nil {
			return nil, fmt.Errorf("expected digest %q: %v: %w", o.Expected, err, errdefs.ErrInvalidArgument)
		}
		alg = o.Expected.Algorithm()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[o.Expected]; ok && o.Expected != "" {
		return nil, fmt.Errorf("content %s: %w", o.Expected, errdefs.ErrAlreadyExists)
	}
	if s.held[ref] {
		return nil, fmt.Errorf("ingest %q is busy: %w", ref, errdefs.ErrUnavailable)
	}
	in, ok := s.ingests[ref]
	if !ok {
		now := time.Now()
		in = &memIngest{started: now, updated: now}
		s.ingests[ref] = in
	}
	if o.Total > 0 {
		in.total = o.Total
	}
	s.held[ref] = true
	h := alg.Hash()
	h.Write(in.data)
	return &memWriter{s: s, ref: ref, in: in, alg: alg, h: h}, nil
}

type memWriter struct {
	s    *memStore
	ref  string
	in   *memIngest
	alg  digest.Algorithm
	h    hash.Hash
	done bool
}

func (w *memWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("ingest %q: write after close: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	w.s.mu.Lock()
	w.in.data = append(w.in.data, p...)
	w.in.updated = time.Now()
	w.s.mu.Unlock()
	w.h.Write(p)
	return len(p), nil
}

func (w *memWriter) Digest() digest.Digest { return digest.NewDigest(w.alg, w.h) }

func (w *memWriter) Offset() int64 {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return int64(len(w.in.data))
}

func (w *memWriter) Truncate(size int64) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if size < 0 || size > int64(len(w.in.data)) {
		return fmt.Errorf("ingest %q: truncate to %d: %w", w.ref, size, errdefs.ErrOutOfRange)
	}
	w.in.data = w.in.data[:size]
	w.h = w.alg.Hash()
	w.h.Write(w.in.data)
	return nil
}

func (w *memWriter) release() {
	w.done = true
	w.s.mu.Lock()
	delete(w.s.held, w.ref)
	w.s.mu.Unlock()
}

func (w *memWriter) Close() error {
	if !w.done {
		w.release()
	}
	return nil
}

func (w *memWriter) Commit(ctx context.Context, size int64, expected digest.Digest) error {
	if w.done {
		return fmt.Errorf("ingest %q: commit after close: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	defer w.release()
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	data := w.in.data
	delete(w.s.ingests, w.ref)
	if size > 0 && size != int64(len(data)) {
		return fmt.Errorf("ingest %q: size %d, expected %d: %w", w.ref, len(data), size, errdefs.ErrFailedPrecondition)
	}
	d := digest.NewDigest(w.alg, w.h)
	if expected != "" {
		if err := expected.Validate(); err != nil {
			return fmt.Errorf("expected digest %q: %v: %w", expected, err, errdefs.ErrInvalidArgument)
		}
		if expected.Algorithm() != w.alg {
			d = expected.Algorithm().FromBytes(data)
		}
		if d != expected {
			return fmt.Errorf("ingest %q: digest %s, expected %s: %w", w.ref, d, expected, errdefs.ErrFailedPrecondition)
		}
	}
	if _, ok := w.s.blobs[d]; ok {
		return fmt.Errorf("content %s: %w", d, errdefs.ErrAlreadyExists)
	}
	w.s.blobs[d] = memBlob{data: data, created: time.Now()}
	return nil
}
