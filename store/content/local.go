package content

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"

	// sha512 digests are accepted next to sha256 ones.
	_ "crypto/sha512"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// Files of an ingest directory, ingest/<sha256 of ref>/.
const (
	ingestData      = "data"      // the bytes written so far
	ingestRef       = "ref"       // the ref, for ListStatuses
	ingestTotal     = "total"     // expected size, decimal, if known
	ingestHashState = "hashstate" // digester state saved by Close, for a fast resume
)

// copyBufferSize is the buffer WriteBlob copies through: big enough that
// syscalls and hashing work on large chunks.
const copyBufferSize = 1 << 20

// parallelHashMin is the size from which a write hashes its bytes on
// another goroutine while it writes them.
const parallelHashMin = 64 << 10

// writebackChunk is how many written bytes a writer lets accumulate in the
// page cache before it starts their writeback (see startWriteback).
const writebackChunk = 8 << 20

// writeback starts the writeback of a file that grows through the page
// cache, writebackChunk bytes at a time, so that the final fsync finds most
// of it on disk. With wait it also waits for the chunk before the one it
// starts, which bounds the dirty pages a long write leaves behind.
type writeback struct {
	wait            bool
	started, waited int64 // started, and waited for, up to here
}

// grew tells wb that f now ends at end.
func (wb *writeback) grew(f *os.File, end int64) {
	if end-wb.started < writebackChunk {
		return
	}
	startWriteback(f, wb.started, end-wb.started)
	if wb.wait && wb.started > wb.waited {
		waitWriteback(f, wb.waited, wb.started-wb.waited)
		wb.waited = wb.started
	}
	wb.started = end
}

// reset restarts wb at off, after a resume or a truncate.
func (wb *writeback) reset(off int64) { wb.started, wb.waited = off, off }

// localStore is a Store on a local filesystem.
type localStore struct {
	root string

	mu    sync.Mutex
	locks map[string]struct{} // refs held by a writer
}

// NewStore opens (creating if needed) a content store rooted at root.
//
// Only one process may use a root at a time; the callers (catalogd and
// providerd) guarantee it through the bbolt lock on their database. Within
// the process every method is safe for concurrent use.
func NewStore(root string) (Store, error) {
	for _, dir := range []string{
		filepath.Join(root, "blobs", string(digest.SHA256)),
		filepath.Join(root, "blobs", string(digest.SHA512)),
		filepath.Join(root, "ingest"),
	} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("content store %s: %w", root, err)
		}
	}
	return &localStore{root: root, locks: map[string]struct{}{}}, nil
}

func (s *localStore) blobPath(dgst digest.Digest) (string, error) {
	if err := dgst.Validate(); err != nil {
		return "", fmt.Errorf("digest %q: %v: %w", dgst, err, errdefs.ErrInvalidArgument)
	}
	return filepath.Join(s.root, "blobs", string(dgst.Algorithm()), dgst.Encoded()), nil
}

func (s *localStore) ingestDir(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(s.root, "ingest", hex.EncodeToString(sum[:]))
}

// Info implements Manager.
func (s *localStore) Info(ctx context.Context, dgst digest.Digest) (Info, error) {
	p, err := s.blobPath(dgst)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Info{}, fmt.Errorf("blob %s is not in the store: %w", dgst, errdefs.ErrNotFound)
		}
		return Info{}, fmt.Errorf("content %s: %w", dgst, err)
	}
	return Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime()}, nil
}

// Walk implements Manager.
func (s *localStore) Walk(ctx context.Context, fn WalkFunc) error {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		dir := filepath.Join(s.root, "blobs", string(alg))
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("content walk %s: %w", dir, err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			dgst := digest.NewDigestFromEncoded(alg, e.Name())
			if dgst.Validate() != nil || !e.Type().IsRegular() {
				continue // not a blob: a stray file is not ours to report
			}
			fi, err := e.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // deleted while walking
				}
				return fmt.Errorf("content walk %s: %w", dgst, err)
			}
			if err := fn(Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete implements Manager.
func (s *localStore) Delete(ctx context.Context, dgst digest.Digest) error {
	p, err := s.blobPath(dgst)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("blob %s is not in the store: %w", dgst, errdefs.ErrNotFound)
		}
		return fmt.Errorf("content %s: %w", dgst, err)
	}
	return nil
}

// ReaderAt implements Provider.
func (s *localStore) ReaderAt(ctx context.Context, dgst digest.Digest) (ReaderAt, error) {
	p, err := s.blobPath(dgst)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s is not in the store: %w", dgst, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("content %s: %w", dgst, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("content %s: %w", dgst, err)
	}
	return NewFileReaderAt(f, fi.Size()), nil
}

// Status implements IngestManager.
func (s *localStore) Status(ctx context.Context, ref string) (Status, error) {
	return s.status(s.ingestDir(ref), ref)
}

func (s *localStore) status(dir, ref string) (Status, error) {
	rfi, err := os.Stat(filepath.Join(dir, ingestRef))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Status{}, fmt.Errorf("no such ingest %q: %w", ref, errdefs.ErrNotFound)
		}
		return Status{}, fmt.Errorf("ingest %q: %w", ref, err)
	}
	st := Status{Ref: ref, StartedAt: rfi.ModTime(), UpdatedAt: rfi.ModTime()}
	if dfi, err := os.Stat(filepath.Join(dir, ingestData)); err == nil {
		st.Offset = dfi.Size()
		st.UpdatedAt = dfi.ModTime()
	}
	if b, err := os.ReadFile(filepath.Join(dir, ingestTotal)); err == nil {
		st.Total, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	return st, nil
}

// ListStatuses implements IngestManager.
func (s *localStore) ListStatuses(ctx context.Context) ([]Status, error) {
	dir := filepath.Join(s.root, "ingest")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("ingest list: %w", err)
	}
	var out []Status
	for _, e := range entries {
		ref, err := os.ReadFile(filepath.Join(dir, e.Name(), ingestRef))
		if err != nil {
			continue // being created or removed
		}
		st, err := s.status(filepath.Join(dir, e.Name()), string(ref))
		if err != nil {
			continue
		}
		out = append(out, st)
	}
	return out, nil
}

// Abort implements IngestManager.
func (s *localStore) Abort(ctx context.Context, ref string) error {
	if err := s.lock(ref); err != nil {
		return err
	}
	defer s.unlock(ref)
	dir := s.ingestDir(ref)
	if _, err := os.Stat(filepath.Join(dir, ingestRef)); err != nil {
		return fmt.Errorf("no such ingest %q: %w", ref, errdefs.ErrNotFound)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("ingest %q: %w", ref, err)
	}
	return nil
}

func (s *localStore) lock(ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, held := s.locks[ref]; held {
		return fmt.Errorf("ingest %q is being written: %w", ref, errdefs.ErrUnavailable)
	}
	s.locks[ref] = struct{}{}
	return nil
}

func (s *localStore) unlock(ref string) {
	s.mu.Lock()
	delete(s.locks, ref)
	s.mu.Unlock()
}

// Writer implements Ingester.
func (s *localStore) Writer(ctx context.Context, ref string, opts ...WriterOpt) (Writer, error) {
	var o WriterOpts
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
		if _, err := s.Info(ctx, o.Expected); err == nil {
			return nil, fmt.Errorf("content %s: %w", o.Expected, errdefs.ErrAlreadyExists)
		}
	}
	if err := s.lock(ref); err != nil {
		return nil, err
	}
	w, err := s.openWriter(ref, alg, o)
	if err != nil {
		s.unlock(ref)
		return nil, err
	}
	return w, nil
}

func (s *localStore) openWriter(ref string, alg digest.Algorithm, o WriterOpts) (*writer, error) {
	dir := s.ingestDir(ref)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ingest %q: %w", ref, err)
	}
	refPath := filepath.Join(dir, ingestRef)
	if _, err := os.Stat(refPath); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(refPath, []byte(ref), 0o644); err != nil {
			return nil, fmt.Errorf("ingest %q: %w", ref, err)
		}
	}
	if o.Total > 0 {
		if err := os.WriteFile(filepath.Join(dir, ingestTotal), []byte(strconv.FormatInt(o.Total, 10)), 0o644); err != nil {
			return nil, fmt.Errorf("ingest %q: %w", ref, err)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, ingestData), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("ingest %q: %w", ref, err)
	}
	w := &writer{s: s, ref: ref, dir: dir, f: f, alg: alg}
	if err := w.resume(); err != nil {
		f.Close()
		return nil, err
	}
	w.direct = openDirect(filepath.Join(dir, ingestData), os.O_WRONLY)
	return w, nil
}

// writer is a Writer on an ingest directory.
type writer struct {
	s   *localStore
	ref string
	dir string
	f   *os.File // the data, read-write, through the page cache
	// direct is the data opened for direct I/O, or nil where the
	// filesystem has none (see writeData).
	direct *os.File
	alg    digest.Algorithm
	h      hash.Hash
	offset int64
	// hashed is how many bytes h covers: offset, except after a
	// WriteChunk and a HashChunk that did not cover the same bytes (see
	// syncHash).
	hashed int64
	// wb starts the writeback of what goes through the page cache.
	wb   writeback
	done bool // closed or committed: the ref is released
}

// hashState is what Close saves so that a resume need not reread the data.
type hashState struct {
	Algorithm digest.Algorithm `json:"algorithm"`
	Offset    int64            `json:"offset"`
	State     []byte           `json:"state"`
}

// resume positions the writer after the data on disk, restoring the hash
// from the saved state when it matches the data, else by rereading it.
func (w *writer) resume() error {
	fi, err := w.f.Stat()
	if err != nil {
		return fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	size := fi.Size()
	if size > 0 && w.restoreHashState(size) {
		w.offset = size
	} else if err := w.rehash(size); err != nil {
		return err
	}
	w.wb.reset(w.offset)
	return nil
}

func (w *writer) restoreHashState(size int64) bool {
	b, err := os.ReadFile(filepath.Join(w.dir, ingestHashState))
	if err != nil {
		return false
	}
	var st hashState
	if json.Unmarshal(b, &st) != nil || st.Algorithm != w.alg || st.Offset != size {
		return false
	}
	h := w.alg.Hash()
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok || u.UnmarshalBinary(st.State) != nil {
		return false
	}
	w.h = h
	w.hashed = size
	return true
}

// rehash resets the hash to cover the first size bytes of the data file.
func (w *writer) rehash(size int64) error {
	w.h = w.alg.Hash()
	if size > 0 {
		if _, err := io.CopyBuffer(w.h, io.NewSectionReader(w.f, 0, size), make([]byte, copyBufferSize)); err != nil {
			return fmt.Errorf("ingest %q: rehash: %w", w.ref, err)
		}
	}
	w.offset, w.hashed = size, size
	return nil
}

// syncHash makes the hash cover exactly the bytes on disk, hashing them
// again when a WriteChunk and a HashChunk did not cover the same bytes.
func (w *writer) syncHash() error {
	if w.hashed == w.offset {
		return nil
	}
	return w.rehash(w.offset)
}

func (w *writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("ingest %q: write after close: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	var n int
	var err error
	if len(p) < parallelHashMin {
		n, err = w.writeData(p)
		w.h.Write(p[:n])
		w.hashed += int64(n)
	} else {
		// Hash on another core while the bytes go to disk: the two are
		// the writer's whole cost, and a download otherwise pays for
		// them one after the other.
		hashed := make(chan struct{})
		go func() {
			w.h.Write(p)
			close(hashed)
		}()
		n, err = w.writeData(p)
		<-hashed
		w.hashed += int64(len(p))
		if n < len(p) {
			// The hash took bytes that are not on disk: hash the
			// data again, as a resume would.
			w.offset += int64(n)
			if rerr := w.syncHash(); rerr != nil {
				err = errors.Join(err, rerr)
			}
			return n, fmt.Errorf("ingest %q: %w", w.ref, err)
		}
	}
	w.offset += int64(n)
	// Start the writeback of what went through the page cache; over
	// bytes written directly it finds nothing to do.
	w.wb.grew(w.f, w.offset)
	if err != nil {
		return n, fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	return n, nil
}

// WriteChunk implements ChunkWriter.
func (w *writer) WriteChunk(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("ingest %q: write after close: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	n, err := w.writeData(p)
	w.offset += int64(n)
	w.wb.grew(w.f, w.offset)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return n, fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	return n, nil
}

// HashChunk implements ChunkWriter.
func (w *writer) HashChunk(p []byte) {
	if w.done {
		return
	}
	w.h.Write(p)
	w.hashed += int64(len(p))
}

// writeData writes p at the writer's offset. A large write whose buffer,
// length and offset meet DirectIOAlign goes straight to disk (O_DIRECT);
// the rest goes through the page cache, and Write starts its writeback
// every writebackChunk bytes.
//
// Bypassing the page cache is what makes a multi-GB install fast and
// steady: a blob is written once, checked by the hash computed on the way,
// and not read again soon, so copying it into page-cache pages only costs
// a memory copy per byte (on virtual machines, where fresh guest pages are
// slow to touch, often the largest cost of an install), and then evicts
// the pages other programs use. Mixing the two kinds of write on one file
// is safe: the kernel keeps the page cache coherent with direct writes, and
// the fsync of Commit covers both.
func (w *writer) writeData(p []byte) (int, error) {
	if w.direct != nil && len(p) >= parallelHashMin && directAligned(p, w.offset) {
		n, err := w.direct.WriteAt(p, w.offset)
		if err == nil || n > 0 || !errors.Is(err, syscall.EINVAL) {
			return n, err
		}
		// The filesystem opened the file for direct I/O but refuses
		// this write: go through the page cache from now on.
		w.direct.Close()
		w.direct = nil
	}
	return w.f.WriteAt(p, w.offset)
}

// closeData closes the data file and, if open, its direct twin.
func (w *writer) closeData() error {
	if w.direct != nil {
		w.direct.Close()
		w.direct = nil
	}
	return w.f.Close()
}

// Digest is the digest of the bytes on disk; the empty digest if they had
// to be hashed again (see ChunkWriter) and could not be read.
func (w *writer) Digest() digest.Digest {
	if w.syncHash() != nil {
		return ""
	}
	return digest.NewDigest(w.alg, w.h)
}
func (w *writer) Offset() int64 { return w.offset }

func (w *writer) Truncate(size int64) error {
	if size < 0 || size > w.offset {
		return fmt.Errorf("ingest %q: truncate to %d of %d bytes: %w", w.ref, size, w.offset, errdefs.ErrOutOfRange)
	}
	if err := w.f.Truncate(size); err != nil {
		return fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	os.Remove(filepath.Join(w.dir, ingestHashState))
	if err := w.rehash(size); err != nil {
		return err
	}
	w.wb.reset(size)
	return nil
}

// Close keeps the data and saves the hash state for a fast resume.
func (w *writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	defer w.s.unlock(w.ref)
	if w.hashed != w.offset {
		// The saved state must cover the data: without one, a resume
		// rehashes it.
		os.Remove(filepath.Join(w.dir, ingestHashState))
	} else if m, ok := w.h.(encoding.BinaryMarshaler); ok {
		if state, err := m.MarshalBinary(); err == nil {
			b, _ := json.Marshal(hashState{Algorithm: w.alg, Offset: w.offset, State: state})
			// Best effort: without it, a resume rereads the data.
			_ = os.WriteFile(filepath.Join(w.dir, ingestHashState), b, 0o644)
		}
	}
	if err := w.closeData(); err != nil {
		return fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	return nil
}

func (w *writer) Commit(ctx context.Context, size int64, expected digest.Digest) error {
	if w.done {
		return fmt.Errorf("ingest %q: commit after close: %w", w.ref, errdefs.ErrFailedPrecondition)
	}
	w.done = true
	defer w.s.unlock(w.ref)
	// Whatever happens next, this ingest is finished: a failed check
	// discards it, a success moves its data away.
	defer os.RemoveAll(w.dir)

	if err := w.f.Sync(); err != nil {
		w.closeData()
		return fmt.Errorf("ingest %q: sync: %w", w.ref, err)
	}
	if size > 0 && size != w.offset {
		w.closeData()
		return fmt.Errorf("ingest %q: size %d, expected %d: %w", w.ref, w.offset, size, errdefs.ErrFailedPrecondition)
	}
	if err := w.syncHash(); err != nil {
		w.closeData()
		return err
	}
	dgst := w.Digest()
	if expected != "" {
		if err := expected.Validate(); err != nil {
			w.closeData()
			return fmt.Errorf("expected digest %q: %v: %w", expected, err, errdefs.ErrInvalidArgument)
		}
		if expected.Algorithm() != w.alg {
			// The writer hashed with another algorithm (an upload whose
			// digest was only named at the end): hash the data again.
			v := expected.Algorithm().Hash()
			if _, err := io.CopyBuffer(v, io.NewSectionReader(w.f, 0, w.offset), make([]byte, copyBufferSize)); err != nil {
				w.closeData()
				return fmt.Errorf("ingest %q: hash: %w", w.ref, err)
			}
			dgst = digest.NewDigest(expected.Algorithm(), v)
		}
		if dgst != expected {
			w.closeData()
			return fmt.Errorf("ingest %q: digest %s, expected %s: %w", w.ref, dgst, expected, errdefs.ErrFailedPrecondition)
		}
	}
	if err := w.closeData(); err != nil {
		return fmt.Errorf("ingest %q: %w", w.ref, err)
	}
	target, _ := w.s.blobPath(dgst)
	if _, err := os.Stat(target); err == nil {
		return fmt.Errorf("content %s: %w", dgst, errdefs.ErrAlreadyExists)
	}
	if err := os.Rename(filepath.Join(w.dir, ingestData), target); err != nil {
		return fmt.Errorf("content %s: commit: %w", dgst, err)
	}
	// The blob is in place. A failure to persist the directory entry is
	// logged by the caller's error path at worst; it is not rolled back.
	syncDir(filepath.Dir(target))
	now := time.Now()
	_ = os.Chtimes(target, now, now)
	return nil
}

// syncDir makes a rename in dir durable. Errors are ignored: the data itself
// is already synced, and some filesystems refuse to sync directories.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// WriteBlob copies r into the ingest ref and commits it with size (0 or less
// if unknown) and expected digest (empty to accept whatever r holds). A blob
// that is already committed is success. It returns the committed blob's
// Info. When the ref holds data from an interrupted write, WriteBlob starts
// over: callers that resume must use Writer directly.
func WriteBlob(ctx context.Context, ing Ingester, ref string, r io.Reader, size int64, expected digest.Digest) (Info, error) {
	opts := []WriterOpt{WithExpected(expected)}
	if size > 0 {
		opts = append(opts, WithTotal(size))
	}
	w, err := ing.Writer(ctx, ref, opts...)
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			return Info{Digest: expected, Size: size}, nil
		}
		return Info{}, err
	}
	if w.Offset() > 0 {
		if err := w.Truncate(0); err != nil {
			w.Close()
			return Info{}, err
		}
	}
	// Hide any WriterTo of r so that the copy goes through the large buffer.
	if _, err := io.CopyBuffer(w, struct{ io.Reader }{r}, AlignedBuffer(copyBufferSize)); err != nil {
		w.Close()
		return Info{}, fmt.Errorf("ingest %q: %w", ref, err)
	}
	n, dgst := w.Offset(), w.Digest()
	if expected != "" {
		dgst = expected
	}
	if err := w.Commit(ctx, size, expected); err != nil && !errdefs.IsAlreadyExists(err) {
		return Info{}, err
	}
	return Info{Digest: dgst, Size: n}, nil
}

// NewSectionReader reads a whole ReaderAt as a stream.
func NewSectionReader(ra ReaderAt) *io.SectionReader {
	return io.NewSectionReader(ra, 0, ra.Size())
}
