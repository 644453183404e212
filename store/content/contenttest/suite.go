// Package contenttest is the test suite that every content.Store
// implementation must pass. It is written against the interface only.
package contenttest

import (
	"bytes"
	"context"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/store/content"
)

// StoreConstructor makes a fresh, empty store for one test.
type StoreConstructor func(t *testing.T) content.Store

// RunTestSuite runs every case of the suite against the stores that
// newStore makes.
func RunTestSuite(t *testing.T, newStore StoreConstructor) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, content.Store)
	}{
		{"WriteCommitRead", testWriteCommitRead},
		{"ResumeAfterClose", testResumeAfterClose},
		{"WrongDigestCommitsNothing", testWrongDigest},
		{"WrongSizeCommitsNothing", testWrongSize},
		{"AlreadyExists", testAlreadyExists},
		{"SHA512", testSHA512},
		{"TruncateRestarts", testTruncate},
		{"StatusAndAbort", testStatusAndAbort},
		{"DeleteAndWalk", testDeleteAndWalk},
		{"WriteBlob", testWriteBlob},
		{"TwoWritersOneRef", testTwoWritersOneRef},
		{"ConcurrentWritersOneRef", testConcurrentWritersOneRef},
		{"CommitRacesDelete", testCommitRacesDelete},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// blob returns n deterministic pseudo-random bytes and their sha256 digest.
func blob(seed uint64, n int) ([]byte, digest.Digest) {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b, digest.FromBytes(b)
}

func mustWriter(t *testing.T, cs content.Store, ref string, opts ...content.WriterOpt) content.Writer {
	t.Helper()
	w, err := cs.Writer(context.Background(), ref, opts...)
	if err != nil {
		t.Fatalf("Writer(%q): %v", ref, err)
	}
	return w
}

func mustWrite(t *testing.T, w io.Writer, p []byte) {
	t.Helper()
	if n, err := w.Write(p); err != nil || n != len(p) {
		t.Fatalf("Write: %d, %v", n, err)
	}
}

func readAll(t *testing.T, cs content.Store, dgst digest.Digest) []byte {
	t.Helper()
	ra, err := cs.ReaderAt(context.Background(), dgst)
	if err != nil {
		t.Fatalf("ReaderAt(%s): %v", dgst, err)
	}
	defer ra.Close()
	b, err := io.ReadAll(content.NewSectionReader(ra))
	if err != nil {
		t.Fatalf("read %s: %v", dgst, err)
	}
	return b
}

func assertNotCommitted(t *testing.T, cs content.Store, dgst digest.Digest) {
	t.Helper()
	if _, err := cs.Info(context.Background(), dgst); !errdefs.IsNotFound(err) {
		t.Fatalf("Info(%s) = %v, want NotFound", dgst, err)
	}
}

func testWriteCommitRead(t *testing.T, cs content.Store) {
	ctx := context.Background()
	data, dgst := blob(1, 3<<20+17)
	w := mustWriter(t, cs, "ref-1", content.WithTotal(int64(len(data))))
	mustWrite(t, w, data[:1000])
	mustWrite(t, w, data[1000:])
	if w.Offset() != int64(len(data)) {
		t.Fatalf("Offset = %d, want %d", w.Offset(), len(data))
	}
	if w.Digest() != dgst {
		t.Fatalf("Digest = %s, want %s (hash while writing)", w.Digest(), dgst)
	}
	if err := w.Commit(ctx, int64(len(data)), dgst); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	info, err := cs.Info(ctx, dgst)
	if err != nil || info.Size != int64(len(data)) || info.Digest != dgst {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	if got := readAll(t, cs, dgst); !bytes.Equal(got, data) {
		t.Fatal("read back different bytes")
	}
	ra, err := cs.ReaderAt(ctx, dgst)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	if ra.Size() != int64(len(data)) {
		t.Fatalf("Size = %d", ra.Size())
	}
	p := make([]byte, 100)
	if _, err := ra.ReadAt(p, 12345); err != nil || !bytes.Equal(p, data[12345:12445]) {
		t.Fatalf("ReadAt mid-blob: %v", err)
	}
	if _, err := cs.Status(ctx, "ref-1"); !errdefs.IsNotFound(err) {
		t.Fatalf("Status after commit = %v, want NotFound", err)
	}
	if _, err := cs.ReaderAt(ctx, digest.FromString("absent")); !errdefs.IsNotFound(err) {
		t.Fatalf("ReaderAt(absent) = %v, want NotFound", err)
	}
}

func testResumeAfterClose(t *testing.T, cs content.Store) {
	ctx := context.Background()
	data, dgst := blob(2, 1<<20)
	w := mustWriter(t, cs, "resume")
	mustWrite(t, w, data[:400000])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = mustWriter(t, cs, "resume")
	if w.Offset() != 400000 {
		t.Fatalf("resumed Offset = %d, want 400000", w.Offset())
	}
	if want := digest.FromBytes(data[:400000]); w.Digest() != want {
		t.Fatalf("resumed Digest = %s, want %s", w.Digest(), want)
	}
	mustWrite(t, w, data[400000:])
	if err := w.Commit(ctx, int64(len(data)), dgst); err != nil {
		t.Fatalf("Commit after resume: %v", err)
	}
	if got := readAll(t, cs, dgst); !bytes.Equal(got, data) {
		t.Fatal("resumed blob differs")
	}
}

func testWrongDigest(t *testing.T, cs content.Store) {
	ctx := context.Background()
	data, dgst := blob(3, 5000)
	_, other := blob(4, 5000)
	w := mustWriter(t, cs, "bad-digest")
	mustWrite(t, w, data)
	err := w.Commit(ctx, int64(len(data)), other)
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Commit with wrong digest = %v, want FailedPrecondition", err)
	}
	assertNotCommitted(t, cs, dgst)
	assertNotCommitted(t, cs, other)
	if _, err := cs.Status(ctx, "bad-digest"); !errdefs.IsNotFound(err) {
		t.Fatalf("bad data kept: Status = %v", err)
	}
	w = mustWriter(t, cs, "bad-digest")
	defer w.Close()
	if w.Offset() != 0 {
		t.Fatalf("new writer after a failed commit resumes at %d, want 0", w.Offset())
	}
}

func testWrongSize(t *testing.T, cs content.Store) {
	data, dgst := blob(5, 5000)
	w := mustWriter(t, cs, "bad-size")
	mustWrite(t, w, data)
	if err := w.Commit(context.Background(), 4999, dgst); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Commit with wrong size = %v, want FailedPrecondition", err)
	}
	assertNotCommitted(t, cs, dgst)
}

func testAlreadyExists(t *testing.T, cs content.Store) {
	ctx := context.Background()
	data, dgst := blob(6, 2048)
	if _, err := content.WriteBlob(ctx, cs, "first", bytes.NewReader(data), int64(len(data)), dgst); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Writer(ctx, "second", content.WithExpected(dgst)); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("Writer(expected existing) = %v, want AlreadyExists", err)
	}
	w := mustWriter(t, cs, "third")
	mustWrite(t, w, data)
	if err := w.Commit(ctx, int64(len(data)), dgst); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("Commit of existing blob = %v, want AlreadyExists", err)
	}
	if _, err := cs.Status(ctx, "third"); !errdefs.IsNotFound(err) {
		t.Fatalf("ingest kept after AlreadyExists: %v", err)
	}
}

func testSHA512(t *testing.T, cs content.Store) {
	ctx := context.Background()
	data, _ := blob(7, 70000)
	sum := sha512.Sum512(data)
	d512 := digest.NewDigestFromBytes(digest.SHA512, sum[:])

	// Digest known only at commit (an OCI upload): the writer hashed sha256.
	w := mustWriter(t, cs, "late-512")
	mustWrite(t, w, data)
	if err := w.Commit(ctx, int64(len(data)), d512); err != nil {
		t.Fatalf("Commit(sha512): %v", err)
	}
	if got := readAll(t, cs, d512); !bytes.Equal(got, data) {
		t.Fatal("sha512 blob differs")
	}
	if err := cs.Delete(ctx, d512); err != nil {
		t.Fatal(err)
	}

	// Digest known up front: the writer hashes sha512 directly.
	w = mustWriter(t, cs, "early-512", content.WithExpected(d512))
	mustWrite(t, w, data)
	if w.Digest() != d512 {
		t.Fatalf("Digest = %s, want %s", w.Digest(), d512)
	}
	if err := w.Commit(ctx, int64(len(data)), d512); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Info(ctx, d512); err != nil {
		t.Fatal(err)
	}
}

func testTruncate(t *testing.T, cs content.Store) {
	ctx := context.Background()
	data, dgst := blob(8, 10000)
	w := mustWriter(t, cs, "trunc")
	mustWrite(t, w, []byte("garbage that must go"))
	if err := w.Truncate(w.Offset() + 1); !errdefs.IsOutOfRange(err) {
		t.Fatalf("Truncate past the end = %v, want OutOfRange", err)
	}
	if err := w.Truncate(0); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, w, data)
	if err := w.Commit(ctx, int64(len(data)), dgst); err != nil {
		t.Fatalf("Commit after Truncate(0): %v", err)
	}
}

func testStatusAndAbort(t *testing.T, cs content.Store) {
	ctx := context.Background()
	w := mustWriter(t, cs, "status", content.WithTotal(100))
	mustWrite(t, w, make([]byte, 40))
	if err := cs.Abort(ctx, "status"); !errdefs.IsUnavailable(err) {
		t.Fatalf("Abort while writing = %v, want Unavailable", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := cs.Status(ctx, "status")
	if err != nil || st.Ref != "status" || st.Offset != 40 || st.Total != 100 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	list, err := cs.ListStatuses(ctx)
	if err != nil || len(list) != 1 || list[0].Ref != "status" {
		t.Fatalf("ListStatuses = %+v, %v", list, err)
	}
	if err := cs.Abort(ctx, "status"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Status(ctx, "status"); !errdefs.IsNotFound(err) {
		t.Fatalf("Status after Abort = %v", err)
	}
	if err := cs.Abort(ctx, "status"); !errdefs.IsNotFound(err) {
		t.Fatalf("second Abort = %v, want NotFound", err)
	}
}

func testDeleteAndWalk(t *testing.T, cs content.Store) {
	ctx := context.Background()
	want := map[digest.Digest]int64{}
	for i := range 3 {
		data, dgst := blob(uint64(10+i), 100*(i+1))
		if _, err := content.WriteBlob(ctx, cs, fmt.Sprint("walk-", i), bytes.NewReader(data), int64(len(data)), dgst); err != nil {
			t.Fatal(err)
		}
		want[dgst] = int64(len(data))
	}
	got := map[digest.Digest]int64{}
	if err := cs.Walk(ctx, func(i content.Info) error { got[i.Digest] = i.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Walk = %v, want %v", got, want)
	}
	stop := errors.New("stop")
	if err := cs.Walk(ctx, func(content.Info) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Walk did not return the callback's error: %v", err)
	}
	for dgst := range want {
		if err := cs.Delete(ctx, dgst); err != nil {
			t.Fatal(err)
		}
		assertNotCommitted(t, cs, dgst)
		if err := cs.Delete(ctx, dgst); !errdefs.IsNotFound(err) {
			t.Fatalf("second Delete = %v, want NotFound", err)
		}
	}
}

func testWriteBlob(t *testing.T, cs content.Store) {
	ctx := context.Background()
	data, dgst := blob(20, 3<<20)
	info, err := content.WriteBlob(ctx, cs, "wb", bytes.NewReader(data), -1, "")
	if err != nil || info.Digest != dgst || info.Size != int64(len(data)) {
		t.Fatalf("WriteBlob(unknown digest) = %+v, %v", info, err)
	}
	info, err = content.WriteBlob(ctx, cs, "wb", bytes.NewReader(data), int64(len(data)), dgst)
	if err != nil || info.Digest != dgst {
		t.Fatalf("WriteBlob(existing) = %+v, %v", info, err)
	}
	// Leftover data on the ref from an interrupted write is discarded.
	w := mustWriter(t, cs, "wb2")
	mustWrite(t, w, []byte("stale"))
	w.Close()
	other, odgst := blob(21, 1000)
	if _, err := content.WriteBlob(ctx, cs, "wb2", bytes.NewReader(other), int64(len(other)), odgst); err != nil {
		t.Fatalf("WriteBlob over stale ingest: %v", err)
	}
	// A committed digest is success at once: the store has those bytes.
	if _, err := content.WriteBlob(ctx, cs, "wb3", bytes.NewReader(other[:10]), 10, dgst); err != nil {
		t.Fatalf("WriteBlob(existing digest) = %v, want success", err)
	}
	_, missing := blob(22, 10)
	if _, err := content.WriteBlob(ctx, cs, "wb4", bytes.NewReader(other[:10]), 10, missing); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("WriteBlob(wrong data) = %v, want FailedPrecondition", err)
	}
}

func testTwoWritersOneRef(t *testing.T, cs content.Store) {
	ctx := context.Background()
	w1 := mustWriter(t, cs, "shared")
	mustWrite(t, w1, []byte("hello "))
	if _, err := cs.Writer(ctx, "shared"); !errdefs.IsUnavailable(err) {
		t.Fatalf("second Writer on a held ref = %v, want Unavailable", err)
	}
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	w2 := mustWriter(t, cs, "shared")
	if w2.Offset() != 6 {
		t.Fatalf("second writer resumes at %d, want 6", w2.Offset())
	}
	mustWrite(t, w2, []byte("world"))
	if err := w2.Commit(ctx, 11, digest.FromString("hello world")); err != nil {
		t.Fatal(err)
	}
}

func testConcurrentWritersOneRef(t *testing.T, cs content.Store) {
	ctx := context.Background()
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		holders []content.Writer
		busy    int
	)
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			w, err := cs.Writer(ctx, "race")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				holders = append(holders, w)
			case errdefs.IsUnavailable(err):
				busy++
			default:
				t.Errorf("Writer: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(holders) != 1 || busy != n-1 {
		t.Fatalf("%d writers got the ref and %d were refused; want 1 and %d", len(holders), busy, n-1)
	}
	holders[0].Close()
}

func testCommitRacesDelete(t *testing.T, cs content.Store) {
	ctx := context.Background()
	data, dgst := blob(30, 64<<10)
	for i := range 25 {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := content.WriteBlob(ctx, cs, fmt.Sprint("race-", i), bytes.NewReader(data), int64(len(data)), dgst)
			if err != nil {
				t.Errorf("round %d: WriteBlob: %v", i, err)
			}
		}()
		go func() {
			defer wg.Done()
			if err := cs.Delete(ctx, dgst); err != nil && !errdefs.IsNotFound(err) {
				t.Errorf("round %d: Delete: %v", i, err)
			}
		}()
		wg.Wait()
		// Either order is fine; a half-written or corrupt blob is not.
		if _, err := cs.Info(ctx, dgst); err == nil {
			if got := readAll(t, cs, dgst); !bytes.Equal(got, data) {
				t.Fatalf("round %d: blob is corrupt after a commit raced a delete", i)
			}
		} else if !errdefs.IsNotFound(err) {
			t.Fatalf("round %d: Info: %v", i, err)
		}
		if st, err := cs.ListStatuses(ctx); err != nil || len(st) != 0 {
			t.Fatalf("round %d: ingests left behind: %+v, %v", i, st, err)
		}
	}
}
