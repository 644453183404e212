package provider

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/provider/archive"
	"github.com/containerprovider/containerprovider/provider/hostfs"
	"github.com/containerprovider/containerprovider/store/content"
)

// gateWriter holds the first write until open is closed, and says when it
// got there.
type gateWriter struct {
	buf     bytes.Buffer
	once    sync.Once
	arrived chan struct{}
	open    chan struct{}
}

func newGateWriter() *gateWriter {
	return &gateWriter{arrived: make(chan struct{}), open: make(chan struct{})}
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.once.Do(func() {
		close(g.arrived)
		<-g.open
	})
	return g.buf.Write(p)
}

// TestRemoveDuringSave: a removal during a save removes the record at
// once; the blobs stay until the save, which completes whole, ends.
func TestRemoveDuringSave(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(nano10586())
	before := len(e.blobs())

	w := newGateWriter()
	saved := make(chan error, 1)
	go func() {
		_, err := e.p.Save(ctx, api.SaveRequest{Name: "NanoServer"}, w)
		saved <- err
	}()
	select {
	case <-w.arrived:
	case <-time.After(testTimeout):
		t.Fatal("the save wrote nothing")
	}
	res, err := e.p.Remove(ctx, RemoveOptions{Name: "NanoServer"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 1 || res.BlobsDeleted != 0 {
		t.Errorf("removal during a save: %+v, want the record removed and no blob deleted", res)
	}
	if imgs, _ := e.p.Images(ctx, GetOptions{}); len(imgs) != 0 {
		t.Errorf("images after the removal: %q", imageNames(imgs))
	}
	if n := len(e.blobs()); n != before {
		t.Errorf("%d blobs during the save, want the %d it reads", n, before)
	}
	close(w.open)
	if err := <-saved; err != nil {
		t.Fatalf("the save failed: %v", err)
	}
	cs, err := content.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := archive.Read(ctx, bytes.NewReader(w.buf.Bytes()), int64(w.buf.Len()), cs, archive.Limits{})
	if err != nil || len(c.Images) != 1 {
		t.Fatalf("the archive does not read back: %+v, %v", c.Images, err)
	}
	if n := len(e.blobs()); n != 0 {
		t.Errorf("%d blobs once the save ended, want 0", n)
	}
	if l := e.leases(); len(l) != 0 {
		t.Errorf("leases left: %q", l)
	}
}

// TestSaveToPathReleasesItsLease: a save to a path leases its blobs while
// it runs and releases them; the file is the caller's alone.
func TestSaveToPathReleasesItsLease(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(nano10586())
	res, err := e.p.SaveToPath(ctx, api.SaveRequest{Name: "NanoServer", Path: t.TempDir() + "/"}, hostfs.OS())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("saved file mode %v, want 0600", mode)
	}
	if filepath.Base(res.Path) != "NanoServer-10-0-10586-0.tar" {
		t.Errorf("saved to %s", res.Path)
	}
	if l := e.leases(); len(l) != 0 {
		t.Errorf("leases left: %q", l)
	}
}
