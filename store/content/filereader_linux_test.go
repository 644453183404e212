package content

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// evicted writes data to a new file, syncs it and drops it from the page
// cache. It reports whether the kernel then says the file is not cached, so
// that reads of it take the direct path.
func evicted(t *testing.T, data []byte) (*os.File, bool) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Logf("fadvise: %v", err)
	}
	cached, ok := pageCached(f, 0, int64(len(data)))
	return f, ok && !cached
}

// TestFileReaderAt reads a file that is not in the page cache with every
// shape of read: aligned and not, small, across the end, past the end, and
// from several goroutines at once; and checks that a cached file is read
// through the page cache.
func TestFileReaderAt(t *testing.T) {
	data := make([]byte, 3<<20+777)
	rand.NewChaCha8([32]byte{9}).Read(data)
	size := int64(len(data))
	f, uncached := evicted(t, data)
	r := NewFileReaderAt(f, size)
	defer r.Close()

	aligned := AlignedBuffer(1 << 20)
	for _, tc := range []struct {
		name    string
		buf     []byte
		off     int64
		want    int
		wantEOF bool
	}{
		{"aligned", aligned, 1 << 20, 1 << 20, false},
		{"unaligned offset", aligned, 1536, 1 << 20, false},
		{"unaligned buffer", make([]byte, 1<<20+3)[3:], 4096, 1 << 20, false},
		{"odd length", AlignedBuffer(1 << 20)[:100_001], 7, 100_001, false},
		{"small", make([]byte, 100), 5, 100, false},
		{"aligned tail", aligned, 3 << 20, 777, true},
		{"unaligned tail", aligned, size - 1000, 1000, true},
		{"past the end", aligned, size + 10, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := r.ReadAt(tc.buf, tc.off)
			if n != tc.want || (tc.wantEOF != errors.Is(err, io.EOF)) || (err != nil && !errors.Is(err, io.EOF)) {
				t.Fatalf("ReadAt(%d bytes, %d) = %d, %v; want %d (EOF %v)", len(tc.buf), tc.off, n, err, tc.want, tc.wantEOF)
			}
			if n > 0 && !bytes.Equal(tc.buf[:n], data[tc.off:tc.off+int64(n)]) {
				t.Fatalf("ReadAt(%d bytes, %d) read other bytes than the file's", len(tc.buf), tc.off)
			}
		})
	}
	switch d := openDirect(f.Name(), os.O_RDONLY); {
	case !uncached:
		t.Log("the kernel cannot tell what the page cache holds (no cachestat) or kept the file cached: only the buffered path was tested")
	case d == nil:
		t.Log("the filesystem refuses O_DIRECT: only the buffered path was tested")
	default:
		d.Close()
		if r.direct == nil {
			t.Error("the file was not cached, yet no read took the direct path")
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(g), 1))
			buf := AlignedBuffer(256 << 10)
			for range 20 {
				off := rnd.Int64N(size)
				if rnd.IntN(2) == 0 {
					off &^= DirectIOAlign - 1
				}
				n, err := r.ReadAt(buf, off)
				if err != nil && !errors.Is(err, io.EOF) || !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
					errs <- errors.New("a concurrent read returned other bytes than the file's")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// A cached file is read through the page cache: no direct descriptor
	// is opened.
	cachedFile, err := os.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, cachedFile); err != nil {
		t.Fatal(err)
	}
	rc := NewFileReaderAt(cachedFile, size)
	defer rc.Close()
	if n, err := rc.ReadAt(aligned, 0); n != len(aligned) || err != nil || !bytes.Equal(aligned, data[:n]) {
		t.Fatalf("ReadAt of a cached file: %d, %v", n, err)
	}
	if c, ok := pageCached(cachedFile, 0, size); ok && c && rc.direct != nil {
		t.Fatal("a read of a cached file opened the file for direct reads")
	}
}

// TestDirectFollowsTheDescriptor: the direct descriptors of a FileWriter
// and a FileReaderAt reach the file that was opened, even after its name
// is given to a symbolic link to another file.
func TestDirectFollowsTheDescriptor(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, bytes.Repeat([]byte("v"), 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, "save.tmp")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The name now leads somewhere else.
	if err := os.Rename(name, filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, name); err != nil {
		t.Fatal(err)
	}
	fw := NewFileWriter(f)
	data := bytes.Repeat([]byte("a"), 4<<20)
	if _, err := fw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); !bytes.Equal(b, bytes.Repeat([]byte("v"), 8<<20)) {
		t.Fatal("the writer wrote through the name into another file")
	}
	got, err := os.ReadFile(filepath.Join(dir, "moved"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the opened file holds %d bytes, %v; want the %d written", len(got), err, len(data))
	}

	r := NewFileReaderAt(f, int64(len(data)))
	defer r.Close()
	buf := make([]byte, 1<<20)
	if _, err := r.ReadAt(buf, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, data[:len(buf)]) {
		t.Fatal("the reader read another file than the one opened")
	}
}
