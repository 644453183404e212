package provider

import (
	"bytes"
	"context"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/store/content"
)

// fullStore is a content store whose writers fail as a full disk does.
type fullStore struct {
	content.Store
	errno syscall.Errno
}

func (s fullStore) Writer(ctx context.Context, ref string, opts ...content.WriterOpt) (content.Writer, error) {
	w, err := s.Store.Writer(ctx, ref, opts...)
	if err != nil {
		return nil, err
	}
	return fullWriter{Writer: w, errno: s.errno}, nil
}

type fullWriter struct {
	content.Writer
	errno syscall.Errno
}

func (w fullWriter) Write(p []byte) (int, error) {
	return 0, &fs.PathError{Op: "write", Path: "ingest/data", Err: w.errno}
}

// TestFullDiskIsInsufficientStorage: a write that the filesystem refuses
// for want of space or quota surfaces as InsufficientStorage, naming the
// root, from a load and from a commit, and changes nothing.
func TestFullDiskIsInsufficientStorage(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, testBaseLayerSize)
	demoSession(t, e)
	var saved bytes.Buffer
	if _, err := e.p.Save(ctx, api.SaveRequest{Name: "NanoServer"}, &saved); err != nil {
		t.Fatal(err)
	}
	real := e.p.cs
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		t.Run(errno.Error(), func(t *testing.T) {
			e.p.cs = fullStore{Store: real, errno: errno}
			defer func() { e.p.cs = real }()
			before := e.snapshot()

			_, err := e.p.Commit(ctx, demoCommit())
			t.Log(err)
			mustClass(t, err, errdefs.ErrInsufficientStorage)
			if !strings.Contains(err.Error(), e.root) {
				t.Errorf("commit: %q does not name the root", err)
			}

			b := newBareEnv(t)
			b.p.cs = fullStore{Store: b.p.cs, errno: errno}
			_, err = b.p.Load(ctx, bytes.NewReader(saved.Bytes()))
			t.Log(err)
			mustClass(t, err, errdefs.ErrInsufficientStorage)
			if !strings.Contains(err.Error(), b.root) {
				t.Errorf("load: %q does not name the root", err)
			}
			if s := b.snapshot(); len(s.blobs)+len(s.images)+len(s.ingests)+len(s.spool) != 0 {
				t.Errorf("a load on a full disk left %v", s)
			}
			if after := e.snapshot(); after.String() != before.String() {
				t.Errorf("a commit on a full disk changed the store:\n before %v\n after  %v", before, after)
			}
		})
	}
}
