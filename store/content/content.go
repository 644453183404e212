// Package content is the content-addressed blob store shared by catalogd and
// providerd.
//
// Blobs live at <root>/blobs/<algorithm>/<hex>. Data being written lives in
// <root>/ingest/<sha256 of ref>/{data,ref,total} until it is committed: a
// writer opened again on the same ref resumes at the size of its data file.
// Writers hash while they write, fsync before Commit, and Commit renames the
// data into place atomically after checking its size and digest.
//
// The interfaces are small and composed by capability, after containerd's
// content.Store: Provider reads, Ingester writes, Manager inspects and
// deletes committed blobs, and IngestManager inspects and aborts writes in
// progress.
package content

import (
	"context"
	"io"
	"time"
	"unsafe"

	"github.com/opencontainers/go-digest"
)

// Store is the whole content store.
type Store interface {
	Manager
	Provider
	IngestManager
	Ingester
}

// Provider gives read access to committed blobs.
type Provider interface {
	// ReaderAt opens the committed blob dgst. The caller closes the
	// returned reader. A blob that is not committed gives ErrNotFound.
	ReaderAt(ctx context.Context, dgst digest.Digest) (ReaderAt, error)
}

// ReaderAt reads a committed blob at any offset, so servers can answer Range
// requests. It is safe for concurrent use.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Info describes a committed blob.
type Info struct {
	Digest    digest.Digest
	Size      int64
	CreatedAt time.Time
}

// WalkFunc is called by Walk for each committed blob. Returning an error
// stops the walk and Walk returns that error.
type WalkFunc func(Info) error

// Manager inspects and deletes committed blobs. Garbage collection is built
// on Walk and Delete.
type Manager interface {
	// Info describes the committed blob dgst, or returns ErrNotFound.
	Info(ctx context.Context, dgst digest.Digest) (Info, error)
	// Walk calls fn for every committed blob, in no particular order.
	Walk(ctx context.Context, fn WalkFunc) error
	// Delete removes the committed blob dgst, or returns ErrNotFound.
	// Readers already open keep reading the old data.
	Delete(ctx context.Context, dgst digest.Digest) error
}

// Status describes a write in progress.
type Status struct {
	Ref       string
	Offset    int64 // bytes on disk
	Total     int64 // expected size, 0 if unknown
	StartedAt time.Time
	UpdatedAt time.Time
}

// IngestManager inspects and aborts writes in progress.
type IngestManager interface {
	// Status describes the ingest ref, or returns ErrNotFound.
	Status(ctx context.Context, ref string) (Status, error)
	// ListStatuses describes every ingest in progress.
	ListStatuses(ctx context.Context) ([]Status, error)
	// Abort discards the data of ref. It returns ErrUnavailable while a
	// writer holds ref, and ErrNotFound if there is no such ingest.
	Abort(ctx context.Context, ref string) error
}

// Ingester opens writers.
type Ingester interface {
	// Writer opens the ingest ref for writing, creating it if needed. When
	// data for ref is already on disk the writer resumes after it: Offset
	// reports where, and the digest covers the bytes already there.
	//
	// Only one writer may hold a ref at a time; a second Writer call for a
	// held ref returns ErrUnavailable. The caller must Close or Commit the
	// writer to release the ref. Close keeps the data for a later resume.
	Writer(ctx context.Context, ref string, opts ...WriterOpt) (Writer, error)
}

// Writer writes one blob. It is not safe for concurrent use.
type Writer interface {
	// Write appends p to the ingest and feeds it to the digester.
	io.Writer
	// Close releases the ref and keeps the data on disk for a resume.
	io.Closer
	// Digest is the digest of every byte written so far, resumed bytes
	// included, in the algorithm of WithExpected (sha256 by default).
	Digest() digest.Digest
	// Offset is the number of bytes written so far, resumed bytes included.
	Offset() int64
	// Truncate cuts the ingest to size bytes, which must not be more than
	// Offset, and rehashes what remains. Truncate(0) restarts the blob.
	Truncate(size int64) error
	// Commit syncs the data, checks it, and renames it into the blob tree.
	//
	// A size > 0 that differs from Offset, or an expected digest that
	// differs from the data, gives ErrFailedPrecondition and discards the
	// ingest: nothing is committed. If the blob is already committed,
	// Commit discards the ingest and returns ErrAlreadyExists, which
	// callers treat as success. Commit releases the ref in every case.
	Commit(ctx context.Context, size int64, expected digest.Digest) error
}

// ChunkWriter is implemented by the Writers of this store, which take each
// chunk of a copy in two steps, the write and the hash, so that CopyAhead
// hashes one chunk on one goroutine while the disk writes another on a
// second: a copy then costs the slower of the two, not their sum chunk by
// chunk. It is found by type assertion; a wrapper of a Writer implements
// it by passing both calls on.
//
// The caller passes the same bytes, in the same order, to both methods.
// WriteChunk and HashChunk may run at the same time, each on its own
// goroutine, but neither while another call of the same method or any
// other method of the Writer runs. The Writer's Offset counts the bytes
// WriteChunk wrote. When the hashed bytes do not match the written ones (a
// failed write, a copy that stopped between the two), Digest, Close and
// Commit hash the data on disk again, as a resume does: the digest always
// covers exactly the bytes on disk.
type ChunkWriter interface {
	io.Writer
	// WriteChunk writes p at Offset and advances it, without hashing p.
	WriteChunk(p []byte) (int, error)
	// HashChunk feeds p, the next bytes after those hashed so far, to
	// the digester.
	HashChunk(p []byte)
}

// WriterOpts are the settings of a Writer call.
type WriterOpts struct {
	// Total is the expected size, recorded for Status. 0 if unknown.
	Total int64
	// Expected is the digest the data should have, if known. It selects
	// the hashing algorithm and lets Writer return ErrAlreadyExists at once
	// when the blob is already committed.
	Expected digest.Digest
}

// WriterOpt sets an option of Writer.
type WriterOpt func(*WriterOpts)

// WithTotal records the expected size of the blob.
func WithTotal(n int64) WriterOpt { return func(o *WriterOpts) { o.Total = n } }

// WithExpected names the digest that the data should have.
func WithExpected(d digest.Digest) WriterOpt { return func(o *WriterOpts) { o.Expected = d } }

// DirectIOAlign is the alignment that lets the local store write bytes
// straight to disk (O_DIRECT) instead of through the page cache: the
// buffer's address, its length and the writer's offset must all be
// multiples of it. Other writes are correct too, only buffered.
const DirectIOAlign = 4096

// AlignedBuffer returns a zeroed buffer of n bytes whose address is a
// multiple of DirectIOAlign. Copy loops that feed a Writer large chunks
// allocate their buffers with it.
func AlignedBuffer(n int) []byte {
	b := make([]byte, n+DirectIOAlign)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) % DirectIOAlign); r != 0 {
		skip = DirectIOAlign - r
	}
	return b[skip : skip+n : skip+n]
}

// directAligned reports whether p written at off meets DirectIOAlign.
func directAligned(p []byte, off int64) bool {
	return len(p)%DirectIOAlign == 0 && off%DirectIOAlign == 0 &&
		uintptr(unsafe.Pointer(unsafe.SliceData(p)))%DirectIOAlign == 0
}
