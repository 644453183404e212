package content

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/opencontainers/go-digest"
)

// TestWriterMixedWrites mixes writes below and above parallelHashMin,
// aligned and unaligned, across writeback chunks, and checks that the
// digest and the committed bytes are those written. Where the filesystem
// has direct I/O, it also checks that the aligned writes took it.
func TestWriterMixedWrites(t *testing.T) {
	ctx := context.Background()
	cs, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 2*writebackChunk+12345)
	var seed [32]byte
	rand.NewChaCha8(seed).Read(data)
	iw, err := cs.Writer(ctx, "mixed")
	if err != nil {
		t.Fatal(err)
	}
	w := iw.(*writer)
	if w.direct == nil {
		t.Logf("no direct I/O on this filesystem (%s): every write is buffered", runtime.GOOS)
	}
	buf := AlignedBuffer(1 << 20)
	// 1 and 7 unalign the offset; 4089 aligns it again.
	sizes := []int{1, 7, 4088, 1 << 20, parallelHashMin - 1, 1, 3 * parallelHashMin, 1 << 20}
	var direct int
	for off, i := 0, 0; off < len(data); i++ {
		n := min(sizes[i%len(sizes)], len(data)-off)
		p := buf[:n]
		copy(p, data[off:off+n])
		if w.direct != nil && n >= parallelHashMin && directAligned(p, int64(off)) {
			direct++
		}
		if m, err := w.Write(p); err != nil || m != n {
			t.Fatalf("write %d bytes at %d: %d, %v", n, off, m, err)
		}
		off += n
	}
	if w.direct != nil && direct == 0 {
		t.Fatal("no write met the alignment for direct I/O: the test does not cover it")
	}
	want := digest.FromBytes(data)
	if w.Digest() != want {
		t.Fatalf("digest %s, want %s", w.Digest(), want)
	}
	if err := w.Commit(ctx, int64(len(data)), want); err != nil {
		t.Fatal(err)
	}
	ra, err := cs.ReaderAt(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	got := make([]byte, ra.Size())
	if _, err := ra.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("committed blob differs from the bytes written (read error %v)", err)
	}
}

func TestAlignedBuffer(t *testing.T) {
	for _, n := range []int{0, 1, DirectIOAlign, 1 << 20} {
		b := AlignedBuffer(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("AlignedBuffer(%d): len %d cap %d", n, len(b), cap(b))
		}
		if n >= DirectIOAlign && !directAligned(b, 0) {
			t.Fatalf("AlignedBuffer(%d) is not aligned", n)
		}
	}
}

// TestWriterFailedLargeWriteKeepsHashOfDisk checks the error path of a
// parallel-hashed write, buffered and direct: the hash has seen bytes that
// never reached the disk, so the writer must hash the data again and stay
// consistent with it.
func TestWriterFailedLargeWriteKeepsHashOfDisk(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run(map[bool]string{false: "buffered", true: "direct"}[direct], func(t *testing.T) {
			ctx := context.Background()
			cs, err := NewStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			iw, err := cs.Writer(ctx, "fail")
			if err != nil {
				t.Fatal(err)
			}
			w := iw.(*writer)
			if direct && w.direct == nil {
				t.Skip("no direct I/O on this filesystem: the direct path cannot be exercised")
			}
			first := AlignedBuffer(3 * parallelHashMin)
			for i := range first {
				first[i] = 'a'
			}
			if _, err := w.Write(first); err != nil {
				t.Fatal(err)
			}
			// Swap in a read-only descriptor of the same data for the
			// path under test: the next write fails without writing a
			// byte.
			ro, err := os.Open(filepath.Join(w.dir, ingestData))
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			target := &w.f
			if direct {
				target = &w.direct
			} else if w.direct != nil {
				w.direct.Close()
				w.direct = nil
			}
			saved := *target
			*target = ro
			second := AlignedBuffer(2 * parallelHashMin)
			n, err := w.Write(second)
			if err == nil || n != 0 {
				t.Fatalf("write on a read-only file: %d, %v", n, err)
			}
			if w.Offset() != int64(len(first)) || w.Digest() != digest.FromBytes(first) {
				t.Fatalf("after the failed write: offset %d digest %s, want %d %s", w.Offset(), w.Digest(), len(first), digest.FromBytes(first))
			}
			*target = saved
			rest := bytes.Repeat([]byte("c"), parallelHashMin)
			if _, err := w.Write(rest); err != nil {
				t.Fatal(err)
			}
			all := append(bytes.Clone(first), rest...)
			if err := w.Commit(ctx, int64(len(all)), digest.FromBytes(all)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestFileWriter writes several chunks in writes of odd sizes, and checks
// the bytes; where the filesystem has direct I/O, that the full chunks took
// it; that a second Close does nothing and a write after Close fails; and
// that the buffered path starts and waits for the writeback of what it
// writes.
func TestFileWriter(t *testing.T) {
	data := make([]byte, 19*fileWriterChunk+12345)
	rand.NewChaCha8([32]byte{7}).Read(data)
	write := func(t *testing.T, direct bool) *FileWriter {
		path := filepath.Join(t.TempDir(), "archive.tar")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		w := NewFileWriter(f)
		if !direct && w.direct != nil {
			w.direct.Close()
			w.direct = nil
		}
		if direct && w.direct == nil {
			t.Skipf("%s refuses O_DIRECT: only the buffered path is tested here", filepath.Dir(path))
		}
		for rest, step := data, 1; len(rest) > 0; step = step*7%(3<<20) + 1 {
			n := min(step, len(rest))
			if got, err := w.Write(rest[:n]); err != nil || got != n {
				t.Fatalf("write of %d bytes: %d, %v", n, got, err)
			}
			rest = rest[n:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := w.Write([]byte("late")); err == nil {
			t.Fatal("a write after Close succeeded")
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("file holds %d bytes (%v), not the %d written", len(got), err, len(data))
		}
		return w
	}
	t.Run("direct", func(t *testing.T) {
		if w := write(t, true); w.wb.started != 0 {
			t.Errorf("writeback started up to %d: some chunks went through the page cache", w.wb.started)
		}
	})
	t.Run("buffered", func(t *testing.T) {
		// Writeback is started over every 8 MiB, and waited for up to the
		// 8 MiB before the last.
		w := write(t, false)
		full := int64(len(data)) / fileWriterChunk * fileWriterChunk
		if full-w.wb.started >= writebackChunk || w.wb.waited == 0 || w.wb.started-w.wb.waited < writebackChunk {
			t.Errorf("writeback started to %d and waited to %d after %d bytes", w.wb.started, w.wb.waited, len(data))
		}
	})
}

// TestFileWriterReportsErrors: a failed chunk write comes back from a later
// Write or from Close, and Close still releases the direct descriptor.
func TestFileWriterReportsErrors(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "archive.tar"))
	if err != nil {
		t.Fatal(err)
	}
	w := NewFileWriter(f)
	f.Close() // every write of the buffered path now fails
	if w.direct != nil {
		w.direct.Close() // and of the direct path
	}
	chunk := make([]byte, fileWriterChunk)
	var werr error
	for i := 0; i < 3 && werr == nil; i++ {
		_, werr = w.Write(chunk)
	}
	cerr := w.Close()
	if werr == nil && cerr == nil {
		t.Fatal("writes to a closed file reported no error")
	}
	if !strings.Contains(errors.Join(werr, cerr).Error(), "closed") {
		t.Fatalf("errors %v, %v; want the closed file's", werr, cerr)
	}
}

// TestCopyAheadIntoChunkWriter copies into a writer of the store, which
// CopyAhead feeds through ChunkWriter (the hash on one goroutine, the
// writes on another), from an offset that is not aligned, over a source
// that ends with an error: the offset and digest cover every byte written,
// the state Close saves resumes the hash without a reread, and the blob
// commits whole.
func TestCopyAheadIntoChunkWriter(t *testing.T) {
	ctx := context.Background()
	cs, err := NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, (aheadDepth+2)*aheadChunk+777)
	rand.NewChaCha8([32]byte{3}).Read(data)
	const head = 3*DirectIOAlign + 5
	iw, err := cs.Writer(ctx, "chunks")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := iw.(ChunkWriter); !ok {
		t.Fatal("the store's writer is not a ChunkWriter")
	}
	if _, err := iw.Write(data[:head]); err != nil {
		t.Fatal(err)
	}
	// The source fails after 3 chunks and some: the copy stops there.
	cut := head + 3*aheadChunk + 4321
	broken := io.MultiReader(bytes.NewReader(data[head:cut]), iotest.ErrReader(io.ErrUnexpectedEOF))
	n, err := CopyAhead(iw, broken, nil, iw.Offset())
	if !errors.Is(err, io.ErrUnexpectedEOF) || n != int64(cut-head) {
		t.Fatalf("copy over a failing source: %d, %v; want %d, the source's error", n, err, cut-head)
	}
	if iw.Offset() != int64(cut) || iw.Digest() != digest.FromBytes(data[:cut]) {
		t.Fatalf("after the copy: offset %d digest %s, want %d %s", iw.Offset(), iw.Digest(), cut, digest.FromBytes(data[:cut]))
	}
	if err := iw.Close(); err != nil {
		t.Fatal(err)
	}

	iw, err = cs.Writer(ctx, "chunks")
	if err != nil {
		t.Fatal(err)
	}
	w := iw.(*writer)
	if _, err := os.Stat(filepath.Join(w.dir, ingestHashState)); err != nil {
		t.Fatalf("Close saved no hash state: %v", err)
	}
	if w.Offset() != int64(cut) || w.hashed != int64(cut) {
		t.Fatalf("resumed at %d with %d bytes hashed, want %d", w.Offset(), w.hashed, cut)
	}
	if n, err := CopyAhead(w, bytes.NewReader(data[cut:]), nil, w.Offset()); err != nil || n != int64(len(data)-cut) {
		t.Fatalf("copy of the rest: %d, %v", n, err)
	}
	want := digest.FromBytes(data)
	if err := w.Commit(ctx, int64(len(data)), want); err != nil {
		t.Fatal(err)
	}
	ra, err := cs.ReaderAt(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	got := make([]byte, ra.Size())
	if _, err := ra.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("committed blob differs from the bytes written (read error %v)", err)
	}
}

// TestChunkWriterMismatchRehashes: when the hashed bytes are not the
// written ones (a HashChunk whose WriteChunk failed or never came, or a
// WriteChunk without its HashChunk), Digest, Close and Commit go by the
// bytes on disk, and Close saves no hash state that does not cover them.
func TestChunkWriterMismatchRehashes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// step writes the chunks and returns the bytes on disk.
		step func(t *testing.T, w *writer) []byte
	}{
		{"hash of a chunk never written", func(t *testing.T, w *writer) []byte {
			a := AlignedBuffer(copyBufferSize)
			rand.NewChaCha8([32]byte{1}).Read(a)
			w.HashChunk(a)
			if _, err := w.WriteChunk(a); err != nil {
				t.Fatal(err)
			}
			b := bytes.Repeat([]byte("b"), copyBufferSize)
			w.HashChunk(b) // never written
			return bytes.Clone(a)
		}},
		{"write without its hash", func(t *testing.T, w *writer) []byte {
			a := bytes.Repeat([]byte("a"), 3*DirectIOAlign)
			if _, err := w.WriteChunk(a); err != nil {
				t.Fatal(err)
			}
			return a
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := NewStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			iw, err := cs.Writer(ctx, "mismatch")
			if err != nil {
				t.Fatal(err)
			}
			w := iw.(*writer)
			onDisk := tc.step(t, w)
			if w.hashed == w.offset {
				t.Fatal("the step left the hash in step with the data: the test does not cover a mismatch")
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(w.dir, ingestHashState)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Close saved a hash state that does not cover the data (%v)", err)
			}
			iw, err = cs.Writer(ctx, "mismatch")
			if err != nil {
				t.Fatal(err)
			}
			w = iw.(*writer)
			if w.Offset() != int64(len(onDisk)) || w.Digest() != digest.FromBytes(onDisk) {
				t.Fatalf("resumed at %d with digest %s, want %d %s", w.Offset(), w.Digest(), len(onDisk), digest.FromBytes(onDisk))
			}
			// Out of step again, then Commit: it checks the bytes on disk.
			w.HashChunk([]byte("stray"))
			if err := w.Commit(ctx, int64(len(onDisk)), digest.FromBytes(onDisk)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
