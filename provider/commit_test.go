package provider

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/store/content"
)

// readBlob reads a committed blob whole.
func (e *env) readBlob(d digest.Digest) []byte {
	e.t.Helper()
	ra, err := e.p.cs.ReaderAt(context.Background(), d)
	if err != nil {
		e.t.Fatal(err)
	}
	defer ra.Close()
	b, err := io.ReadAll(content.NewSectionReader(ra))
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// demoSession installs NanoServer, creates a container, copies a file in
// and stops it: the reference session up to New-ContainerImage.
func demoSession(t *testing.T, e *env) api.Container {
	t.Helper()
	ctx := context.Background()
	e.mustInstall(nano10586())
	c, err := e.p.CreateContainer(ctx, api.ContainerCreateRequest{Image: "NanoServer", Name: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.StartContainer(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	err = e.p.CopyToContainer(ctx, "demo", `C:\app`, makeTar(t, tarEntry{name: "hello.txt", body: "Hello from DemoImage"}))
	if err != nil {
		t.Fatal(err)
	}
	if c, err = e.p.StopContainer(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	return c
}

func demoCommit() api.CommitRequest {
	return api.CommitRequest{Container: "demo", Publisher: "Demo", Name: "DemoImage", Version: "1.0"}
}

// TestReferenceSession is the session of the reference documentation:
// New-ContainerImage from a container, Get, then the removal rules.
func TestReferenceSession(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	nano := e.cat.item("nanoserver:10.0.10586.0")
	c := demoSession(t, e)

	img, err := e.p.Commit(ctx, demoCommit())
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := e.p.Images(ctx, GetOptions{Name: "DemoImage"})
	if err != nil || len(imgs) != 1 {
		t.Fatalf("Get DemoImage: %q, %v", imageNames(imgs), err)
	}
	got := imgs[0]
	if got.Name != "DemoImage" || got.Publisher != "CN=Demo" || got.Version != "1.0.0.0" || got.IsOSImage ||
		got.Repository != "demoimage" || got.Source != sourceLocal || got.Digest != img.Digest {
		t.Errorf("DemoImage %+v", got)
	}
	wantParent := api.ParentRef{Name: "NanoServer", Version: "10.0.10586.0", Digest: nano.Digest.String(), Publisher: "CN=Microsoft"}
	if got.ParentImage == nil || *got.ParentImage != wantParent {
		t.Errorf("ParentImage %+v, want %+v", got.ParentImage, wantParent)
	}
	if !slices.Equal(got.Refs, []string{"demoimage:1.0.0.0", "demoimage:latest"}) {
		t.Errorf("refs %q", got.Refs)
	}
	if children, _ := e.p.Images(ctx, GetOptions{ChildOf: "NanoServer"}); !slices.Equal(imageNames(children), []string{"DemoImage 1.0.0.0"}) {
		t.Errorf("children of NanoServer: %q", imageNames(children))
	}

	// The image: the parent's layers and one more, with the annotations.
	rec, ok := e.record(digest.Digest(img.Digest))
	if !ok {
		t.Fatal("no record")
	}
	parentRec, _ := e.record(nano.Digest)
	var m ocispec.Manifest
	if err := json.Unmarshal(e.readBlob(rec.Manifest.Digest), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != len(parentRec.Layers)+1 || m.Layers[0].Digest != parentRec.Layers[0].Digest {
		t.Fatalf("layers %+v", m.Layers)
	}
	wantAnn := map[string]string{
		find.AnnotationTitle: "DemoImage", find.AnnotationVersion: "1.0.0.0", find.AnnotationVendor: "CN=Demo",
		// base.name is fully qualified: the parent's registry is known.
		find.AnnotationBaseName:   strings.TrimPrefix(e.cat.srv.URL, "http://") + "/nanoserver:10.0.10586.0",
		find.AnnotationBaseDigest: nano.Digest.String(),
	}
	for k, v := range wantAnn {
		if m.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, m.Annotations[k], v)
		}
	}
	if m.Annotations[find.AnnotationCreated] == "" {
		t.Error("no created annotation")
	}
	var cfg, parentCfg ocispec.Image
	if err := json.Unmarshal(e.readBlob(m.Config.Digest), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(e.readBlob(parentRec.Config.Digest), &parentCfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.RootFS.DiffIDs) != len(parentCfg.RootFS.DiffIDs)+1 || len(cfg.History) != len(parentCfg.History)+1 ||
		cfg.OS != "windows" || cfg.OSVersion != parentCfg.OSVersion {
		t.Errorf("config %+v", cfg)
	}
	// The new layer is a tar+gzip of the container's directory, whose
	// uncompressed digest is the new diff_id.
	newLayer := m.Layers[len(m.Layers)-1]
	if newLayer.MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Errorf("layer media type %q", newLayer.MediaType)
	}
	zr, err := gzip.NewReader(strings.NewReader(string(e.readBlob(newLayer.Digest))))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if d := digest.FromBytes(raw); d != cfg.RootFS.DiffIDs[len(cfg.RootFS.DiffIDs)-1] {
		t.Errorf("diff_id %s, the tar has %s", cfg.RootFS.DiffIDs[len(cfg.RootFS.DiffIDs)-1], d)
	}
	tr := tar.NewReader(strings.NewReader(string(raw)))
	var names []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Name == "app/hello.txt" {
			b, _ := io.ReadAll(tr)
			if string(b) != "Hello from DemoImage" {
				t.Errorf("hello.txt holds %q", b)
			}
		}
	}
	if !slices.Equal(names, []string{"app/", "app/hello.txt"}) {
		t.Errorf("layer entries %q", names)
	}
	// The container stays, as after docker commit.
	if _, err := e.p.Container(ctx, c.ID); err != nil {
		t.Errorf("container after commit: %v", err)
	}

	// Removing NanoServer names the container and DemoImage; Force does not
	// bypass it.
	_, err = e.p.Remove(ctx, RemoveOptions{Name: "NanoServer"})
	var de *DependentsError
	if !errors.As(err, &de) {
		t.Fatalf("Remove NanoServer: %v, want a *DependentsError", err)
	}
	mustClass(t, err, errdefs.ErrConflict)
	if !slices.Equal(de.Dependents, []string{"image DemoImage 1.0.0.0", "container demo"}) {
		t.Errorf("dependents %q", de.Dependents)
	}
	// Remove the container, then DemoImage, then NanoServer: every blob
	// goes.
	if err := e.p.RemoveContainer(ctx, "demo", false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Remove(ctx, RemoveOptions{Name: "DemoImage"}); err != nil {
		t.Fatal(err)
	}
	if len(e.blobs()) != len(parentRec.blobs()) {
		t.Errorf("%d blobs after removing DemoImage, want NanoServer's %d", len(e.blobs()), len(parentRec.blobs()))
	}
	if _, err := e.p.Remove(ctx, RemoveOptions{Name: "NanoServer"}); err != nil {
		t.Fatal(err)
	}
	if b := e.blobs(); len(b) != 0 {
		t.Errorf("%d blobs left: %v", len(b), b)
	}
}

func TestCommitConflictAndForce(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	demoSession(t, e)
	first, err := e.p.Commit(ctx, demoCommit())
	if err != nil {
		t.Fatal(err)
	}
	// The same name and version: 409, whatever the case of the name and
	// the form of the version.
	req := demoCommit()
	req.Name, req.Version = "demoimage", "1.0.0"
	_, err = e.p.Commit(ctx, req)
	mustClass(t, err, errdefs.ErrConflict)
	if !strings.Contains(err.Error(), "DemoImage 1.0.0.0") || !strings.Contains(err.Error(), "force") {
		t.Errorf("conflict error %q", err)
	}

	// Force replaces: new content, new digest, the old blobs collected.
	if err := e.p.CopyToContainer(ctx, "demo", "/app", makeTar(t, tarEntry{name: "more.txt", body: "more"})); err != nil {
		t.Fatal(err)
	}
	oldRec, _ := e.record(digest.Digest(first.Digest))
	req.Force = true
	second, err := e.p.Commit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if second.Digest == first.Digest {
		t.Fatal("forced commit of changed content kept the digest")
	}
	imgs, _ := e.p.Images(ctx, GetOptions{Name: "DemoImage"})
	if len(imgs) != 1 || imgs[0].Digest != second.Digest || imgs[0].Name != "demoimage" {
		t.Errorf("after force: %+v", imgs)
	}
	for _, d := range []digest.Digest{oldRec.Manifest.Digest, oldRec.Layers[len(oldRec.Layers)-1].Digest} {
		if _, err := e.p.cs.Info(ctx, d); !errdefs.IsNotFound(err) {
			t.Errorf("blob %s of the replaced image: %v", d, err)
		}
	}

	// A second version is another image; an image with a container on it
	// is not replaced, even forced.
	req = demoCommit()
	req.Version = "2.0"
	if _, err := e.p.Commit(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.CreateContainer(ctx, api.ContainerCreateRequest{Image: "DemoImage:2.0.0.0", Name: "child"}); err != nil {
		t.Fatal(err)
	}
	if err := e.p.CopyToContainer(ctx, "demo", "/app", makeTar(t, tarEntry{name: "v3.txt", body: "v3"})); err != nil {
		t.Fatal(err)
	}
	req.Force = true
	_, err = e.p.Commit(ctx, req)
	var de *DependentsError
	if !errors.As(err, &de) || !slices.Equal(de.Dependents, []string{"container child"}) {
		t.Errorf("forced replacement of an image in use: %v", err)
	}

	// A child of a committed image: commit from a container on DemoImage.
	req = api.CommitRequest{Container: "child", Name: "DemoChild", Version: "1", Publisher: "CN=Demo"}
	img, err := e.p.Commit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if img.ParentImage == nil || img.ParentImage.Name != "DemoImage" || img.ParentImage.Version != "2.0.0.0" || img.Publisher != "CN=Demo" {
		t.Errorf("child of a committed image: %+v", img)
	}
}

func TestCommitRefusesBadInput(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	demoSession(t, e)
	before := len(e.blobs())
	tests := []struct {
		name string
		req  api.CommitRequest
		want error
	}{
		{name: "no container", req: api.CommitRequest{Container: "nothing", Name: "X", Version: "1", Publisher: "P"}, want: errdefs.ErrNotFound},
		{name: "no name", req: api.CommitRequest{Container: "demo", Version: "1", Publisher: "P"}, want: errdefs.ErrInvalidArgument},
		{name: "bad repository", req: api.CommitRequest{Container: "demo", Name: "Demo Image", Version: "1", Publisher: "P"}, want: errdefs.ErrInvalidArgument},
		{name: "wildcard", req: api.CommitRequest{Container: "demo", Name: "Demo*", Version: "1", Publisher: "P"}, want: errdefs.ErrInvalidArgument},
		{name: "bad version", req: api.CommitRequest{Container: "demo", Name: "X", Version: "1.a", Publisher: "P"}, want: errdefs.ErrInvalidArgument},
		{name: "five parts", req: api.CommitRequest{Container: "demo", Name: "X", Version: "1.2.3.4.5", Publisher: "P"}, want: errdefs.ErrInvalidArgument},
		{name: "no publisher", req: api.CommitRequest{Container: "demo", Name: "X", Version: "1"}, want: errdefs.ErrInvalidArgument},
		{name: "taken by the parent", req: api.CommitRequest{Container: "demo", Name: "NanoServer", Version: "10.0.10586", Publisher: "P"}, want: errdefs.ErrConflict},
		{name: "parent forced", req: api.CommitRequest{Container: "demo", Name: "NanoServer", Version: "10.0.10586", Publisher: "P", Force: true}, want: errdefs.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.p.Commit(ctx, tt.req)
			mustClass(t, err, tt.want)
		})
	}
	if imgs, _ := e.p.Images(ctx, GetOptions{}); len(imgs) != 1 {
		t.Errorf("refused commits changed the images: %q", imageNames(imgs))
	}
	// The forced one over the parent wrote its blobs before its record was
	// refused: the next collection frees them, nothing else.
	if _, _, err := e.p.collectGarbage(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(e.blobs()); got != before {
		t.Errorf("%d blobs, want %d", got, before)
	}
	if st, err := e.p.cs.ListStatuses(ctx); err != nil || len(st) != 0 {
		t.Errorf("ingests left: %+v, %v", st, err)
	}
}

// TestCommitRacesGarbageCollection commits while collections run: no
// record may end up pointing at a collected blob.
func TestCommitRacesGarbageCollection(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	demoSession(t, e)
	const commits = 5
	errs := make(chan error, commits+1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 4 * commits {
			if _, _, err := e.p.collectGarbage(ctx); err != nil {
				errs <- err
				return
			}
		}
	}()
	for i := range commits {
		req := demoCommit()
		req.Version = fmt.Sprintf("9.%d", i)
		if err := e.p.CopyToContainer(ctx, "demo", "/", makeTar(t, tarEntry{name: req.Version + ".txt", body: req.Version})); err != nil {
			t.Fatal(err)
		}
		if _, err := e.p.Commit(ctx, req); err != nil {
			errs <- err
		}
	}
	<-done
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	recs := e.records()
	if len(recs) != commits+1 {
		t.Errorf("%d images, want %d", len(recs), commits+1)
	}
	for _, r := range recs {
		for _, d := range r.blobs() {
			if _, err := e.p.cs.Info(ctx, d.Digest); err != nil {
				t.Errorf("image %s: blob %s: %v", r.label(), d.Digest, err)
			}
		}
	}
}
