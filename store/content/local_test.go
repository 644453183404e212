package content_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/content/contenttest"
)

func newLocal(t *testing.T) content.Store {
	cs, err := content.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestLocalStore(t *testing.T) {
	contenttest.RunTestSuite(t, newLocal)
}

// TestResumeWithoutHashState checks the slow path of a resume: the saved
// hash state is gone (a crash before Close), so the writer rereads the data.
func TestResumeWithoutHashState(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	cs, err := content.NewStore(root)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789"), 10000)
	w, err := cs.Writer(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:30000])
	w.Close()
	states, _ := filepath.Glob(filepath.Join(root, "ingest", "*", "hashstate"))
	if len(states) != 1 {
		t.Fatalf("hash state files: %v", states)
	}
	// A stale state from a shorter write must not be trusted either.
	os.WriteFile(states[0], []byte(`{"algorithm":"sha256","offset":5,"state":""}`), 0o644)

	w, err = cs.Writer(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 30000 || w.Digest() != digest.FromBytes(data[:30000]) {
		t.Fatalf("resume: offset %d digest %s", w.Offset(), w.Digest())
	}
	w.Write(data[30000:])
	if err := w.Commit(ctx, int64(len(data)), digest.FromBytes(data)); err != nil {
		t.Fatal(err)
	}
}

// TestReaderAtExposesFile checks the optional File method that HTTP
// servers use to serve a blob with sendfile.
func TestReaderAtExposesFile(t *testing.T) {
	ctx := context.Background()
	cs := newLocal(t)
	info, err := content.WriteBlob(ctx, cs, "f", bytes.NewReader([]byte("blob")), 4, "")
	if err != nil {
		t.Fatal(err)
	}
	ra, err := cs.ReaderAt(ctx, info.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	f, ok := ra.(interface{ File() *os.File })
	if !ok {
		t.Fatal("local ReaderAt has no File method")
	}
	if fi, err := f.File().Stat(); err != nil || fi.Size() != 4 {
		t.Fatalf("File().Stat() = %v, %v", fi, err)
	}
}
