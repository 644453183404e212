package provider

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider/archive"
	"github.com/containerprovider/containerprovider/store/content"
)

// testArchive builds archives of generated images in memory.
type testArchive struct {
	t      testing.TB
	blobs  map[digest.Digest][]byte
	images []archive.Image
}

func newTestArchive(t testing.TB) *testArchive {
	return &testArchive{t: t, blobs: map[digest.Digest][]byte{}}
}

func (a *testArchive) blob(b []byte, mt string) ocispec.Descriptor {
	d := digest.FromBytes(b)
	a.blobs[d] = b
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
}

// tinyLayer is a gzip tar of one small file.
func tinyLayer(t testing.TB, name, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// add adds a base OS image repo:version with the given layers and
// manifest annotations (title and version are set unless ann has them).
func (a *testArchive) add(repo, version string, layers []ocispec.Descriptor, ann map[string]string) archive.Image {
	a.t.Helper()
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: "windows", Architecture: "amd64"}, RootFS: ocispec.RootFS{Type: "layers"}}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.Digest)
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		a.t.Fatal(err)
	}
	full := map[string]string{find.AnnotationTitle: repo, find.AnnotationVersion: version}
	for k, v := range ann {
		full[k] = v
	}
	m := ocispec.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   ocispec.MediaTypeImageManifest,
		Config:      a.blob(cb, ocispec.MediaTypeImageConfig),
		Layers:      layers,
		Annotations: full,
	}
	mb, err := json.Marshal(m)
	if err != nil {
		a.t.Fatal(err)
	}
	img := archive.Image{RefName: repo + ":" + version, Manifest: a.blob(mb, ocispec.MediaTypeImageManifest), Config: m.Config, Layers: layers}
	a.images = append(a.images, img)
	return img
}

func (a *testArchive) bytes() []byte {
	a.t.Helper()
	var buf bytes.Buffer
	err := archive.Write(context.Background(), &buf, a.images, func(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
		b, ok := a.blobs[d.Digest]
		if !ok {
			return nil, fmt.Errorf("blob %s: %w", d.Digest, errdefs.ErrNotFound)
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	})
	if err != nil {
		a.t.Fatal(err)
	}
	return buf.Bytes()
}

// manyImages is an archive of n tiny images, which share one layer: n
// manifests in 100 repositories.
func manyImages(t testing.TB, n int) []byte {
	a := newTestArchive(t)
	layer := a.blob(tinyLayer(t, "hello.txt", "hello"), ocispec.MediaTypeImageLayerGzip)
	for i := range n {
		a.add(fmt.Sprintf("app%d", i%100), fmt.Sprintf("1.0.%d.0", i), []ocispec.Descriptor{layer}, nil)
	}
	return a.bytes()
}

// TestLoadScalesLinearly loads archives of 1,000 and 10,000 images: the
// checks are key lookups and the records one transaction, so ten times
// the images take about ten times as long, far from the hundred times of a
// scan per image. The blobs go to a store in memory: on disk, two fsyncs
// per blob would be most of what the test measures.
func TestLoadScalesLinearly(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 11,000 images")
	}
	ctx := context.Background()
	load := func(n int) time.Duration {
		b := manyImages(t, n)
		e := newBareEnv(t)
		e.p.cs = newMemStore()
		start := time.Now()
		res, err := e.p.Load(ctx, bytes.NewReader(b))
		d := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Images) != n {
			t.Fatalf("%d images loaded, want %d", len(res.Images), n)
		}
		imgs, err := e.p.Images(ctx, GetOptions{Name: "app7"})
		if err != nil || len(imgs) != (n+92)/100 {
			t.Fatalf("app7: %d images, %v", len(imgs), err)
		}
		if latest := imgs[len(imgs)-1]; !slices.Contains(latest.Refs, "app7:latest") {
			t.Errorf("the highest version of app7 is not latest: %+v", latest)
		}
		t.Logf("%d images: %v", n, d)
		return d
	}
	n := 1000
	if raceEnabled {
		n = 300 // the same ratio, in the time of the race detector
	}
	small, large := load(n), load(10*n)
	if ratio := float64(large) / float64(small); ratio >= 20 {
		t.Errorf("%d images took %.1f times as long as %d (%v, %v): not linear", 10*n, ratio, n, large, small)
	} else {
		t.Logf("ratio %.1f", ratio)
	}
}

// storeSnapshot is what a refused or cancelled load must leave as it was:
// the committed blobs, the ingests, the records and refs, the leases and
// the spool directory.
type storeSnapshot struct {
	blobs, ingests, images, leases, spool []string
}

func (e *env) snapshot() storeSnapshot {
	e.t.Helper()
	ctx := context.Background()
	var s storeSnapshot
	for _, d := range e.blobs() {
		s.blobs = append(s.blobs, d.String())
	}
	sts, err := e.p.cs.ListStatuses(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, st := range sts {
		s.ingests = append(s.ingests, st.Ref)
	}
	imgs, err := e.p.Images(ctx, GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, img := range imgs {
		s.images = append(s.images, img.Digest+" "+strings.Join(img.Refs, ","))
	}
	s.leases = e.leases()
	entries, _ := os.ReadDir(filepath.Join(e.root, tmpDir))
	for _, en := range entries {
		s.spool = append(s.spool, en.Name())
	}
	slices.Sort(s.blobs)
	slices.Sort(s.ingests)
	return s
}

func (s storeSnapshot) String() string {
	return fmt.Sprintf("blobs %q ingests %q images %q leases %q spool %q", s.blobs, s.ingests, s.images, s.leases, s.spool)
}

// cancelStore cancels a context at the nth call of one kind that a load
// makes of its store: opening a writer (while the archive is ingested),
// committing (once it is verified) or Info (while the records are checked).
type cancelStore struct {
	content.Store
	mu     sync.Mutex
	kind   string
	n      int
	cancel context.CancelFunc
}

func (c *cancelStore) tick(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kind == kind {
		if c.n--; c.n == 0 {
			c.cancel()
		}
	}
}

func (c *cancelStore) Writer(ctx context.Context, ref string, opts ...content.WriterOpt) (content.Writer, error) {
	c.tick("writer")
	w, err := c.Store.Writer(ctx, ref, opts...)
	if err != nil {
		return nil, err
	}
	return cancelWriter{Writer: w, c: c}, nil
}

func (c *cancelStore) Info(ctx context.Context, d digest.Digest) (content.Info, error) {
	c.tick("info")
	return c.Store.Info(ctx, d)
}

type cancelWriter struct {
	content.Writer
	c *cancelStore
}

func (w cancelWriter) Commit(ctx context.Context, size int64, d digest.Digest) error {
	err := w.Writer.Commit(ctx, size, d)
	w.c.tick("commit")
	return err
}

// TestLoadCancelLeavesNothing cancels loads at points along the way: each
// leaves the store exactly as it was, no record and none of the blobs that
// the archive brought.
func TestLoadCancelLeavesNothing(t *testing.T) {
	ctx := context.Background()
	e := newBareEnv(t)
	// What the store holds before: an image loaded earlier.
	first := newTestArchive(t)
	first.add("kept", "1.0.0.0", []ocispec.Descriptor{first.blob(tinyLayer(t, "kept.txt", "kept"), ocispec.MediaTypeImageLayerGzip)}, nil)
	if _, err := e.p.Load(ctx, bytes.NewReader(first.bytes())); err != nil {
		t.Fatal(err)
	}
	b := manyImages(t, 300)
	real := e.p.cs
	for _, tt := range []struct {
		kind string
		n    int
	}{
		{"writer", 50},  // while the blobs are ingested
		{"commit", 100}, // among the commits
		{"commit", 302}, // at the last commit: 300 manifests, the layer and the config
		{"info", 450},   // while the records are checked, before the transaction
	} {
		t.Run(fmt.Sprintf("%s %d", tt.kind, tt.n), func(t *testing.T) {
			before := e.snapshot()
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			e.p.cs = &cancelStore{Store: real, kind: tt.kind, n: tt.n, cancel: cancel}
			_, err := e.p.Load(cctx, bytes.NewReader(b))
			e.p.cs = real
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Load: %v, want canceled", err)
			}
			if after := e.snapshot(); after.String() != before.String() {
				t.Errorf("a cancelled load changed the store:\n before %v\n after  %v", before, after)
			}
		})
	}
	// Not cancelled, the same archive loads.
	if res, err := e.p.Load(ctx, bytes.NewReader(b)); err != nil || len(res.Images) != 300 {
		t.Fatalf("Load: %d images, %v", len(res.Images), err)
	}
}

// TestLoadChecksLayers: a layer whose bytes are not what its media type
// says is refused, naming the blob, and nothing is recorded or kept.
func TestLoadChecksLayers(t *testing.T) {
	ctx := context.Background()
	e := newBareEnv(t)
	passwd := []byte("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
	for _, tt := range []struct {
		name, mediaType string
		data            []byte
		text            string
	}{
		{"text as a tar", ocispec.MediaTypeImageLayer, passwd, "not a tar"},
		{"text as a gzip tar", ocispec.MediaTypeImageLayerGzip, passwd, "not gzip"},
		{"text as a docker layer", "application/vnd.docker.image.rootfs.diff.tar.gzip", passwd, "not gzip"},
		{"unknown media type", "text/plain", passwd, "not a tar, tar+gzip or tar+zstd layer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestArchive(t)
			l := a.blob(tt.data, tt.mediaType)
			a.add("evil", "1.0.0.0", []ocispec.Descriptor{l}, nil)
			before := e.snapshot()
			_, err := e.p.Load(ctx, bytes.NewReader(a.bytes()))
			mustClass(t, err, errdefs.ErrInvalidArgument)
			if !strings.Contains(err.Error(), tt.text) || !strings.Contains(err.Error(), l.Digest.String()) {
				t.Errorf("error %q does not say %q and name the blob", err, tt.text)
			}
			if after := e.snapshot(); after.String() != before.String() {
				t.Errorf("a refused load changed the store:\n before %v\n after  %v", before, after)
			}
		})
	}
}

// TestLoadChecksWhatGetShows: the title, publisher, description and
// os.version of an archive image are checked as Commit checks its request.
func TestLoadChecksWhatGetShows(t *testing.T) {
	ctx := context.Background()
	e := newBareEnv(t)
	tests := []struct {
		name string
		ann  map[string]string
		ok   bool
		text string
	}{
		{name: "ANSI escape in the title", ann: map[string]string{find.AnnotationTitle: "Nano\x1b[31mServer"}, text: "control character"},
		{name: "line breaks in the title", ann: map[string]string{find.AnnotationTitle: "Nano\r\nServer"}, text: "control character"},
		{name: "long title", ann: map[string]string{find.AnnotationTitle: strings.Repeat("t", 200)}, text: "longer than 128"},
		{name: "1 MiB description", ann: map[string]string{find.AnnotationDescription: strings.Repeat("d", 1<<20)}, text: "longer than 4096"},
		{name: "escape in the description", ann: map[string]string{find.AnnotationDescription: "a \x1b]0;owned\x07 b"}, text: "control character"},
		{name: "escape in the publisher", ann: map[string]string{find.AnnotationVendor: "CN=\x1b[2JAcme"}, text: "control character"},
		{name: "long publisher", ann: map[string]string{find.AnnotationVendor: strings.Repeat("p", 1<<20)}, text: "longer than 256"},
		{name: "line breaks in the description", ann: map[string]string{find.AnnotationDescription: "first line\nsecond line"}, ok: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestArchive(t)
			l := a.blob(tinyLayer(t, "f", tt.name), ocispec.MediaTypeImageLayerGzip)
			a.add(fmt.Sprintf("image%d", i), "1.0.0.0", []ocispec.Descriptor{l}, tt.ann)
			_, err := e.p.Load(ctx, bytes.NewReader(a.bytes()))
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			mustClass(t, err, errdefs.ErrInvalidArgument)
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not contain %q", err, tt.text)
			}
			if len(err.Error()) > 1000 {
				t.Errorf("error of %d bytes", len(err.Error()))
			}
		})
	}
	imgs, _ := e.p.Images(ctx, GetOptions{})
	if len(imgs) != 1 {
		t.Errorf("images %q, want the one accepted", imageNames(imgs))
	}
}

// gzipOf compresses b.
func gzipOf(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLoadSpoolIsBounded: a gzip bomb stops at its first bytes when it is
// no tar, and at the spool limit when it is one; a spool that would leave
// too little free space stops too. Nothing stays in the spool directory.
func TestLoadSpoolIsBounded(t *testing.T) {
	ctx := context.Background()
	e := newBareEnv(t)
	e.p.spoolMaxSize = 1 << 20
	zeros := gzipOf(t, make([]byte, 64<<20))
	var tarBomb bytes.Buffer
	tw := tar.NewWriter(&tarBomb)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "blobs/sha256/" + strings.Repeat("0", 64), Mode: 0o644, Size: 64 << 20})
	tw.Write(make([]byte, 64<<20))
	tw.Close()
	bomb := gzipOf(t, tarBomb.Bytes())
	valid := manyImages(t, 3)
	tests := []struct {
		name string
		data []byte
		free uint64
		want error
		text string
	}{
		{name: "gzip of zeros", data: zeros, want: errdefs.ErrInvalidArgument, text: "not a tar archive"},
		{name: "gzip of a tar over the limit", data: bomb, want: errdefs.ErrTooLarge, text: "spool limit of 1.0 MiB"},
		{name: "no free space", data: valid, free: 1, want: errdefs.ErrInsufficientStorage, text: "Not enough space on " + e.root},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.p.freeSpace = func(string) (uint64, error) {
				if tt.free != 0 {
					return tt.free, nil
				}
				return 1 << 40, nil
			}
			var read int64
			_, err := e.p.Load(ctx, &countingReader{r: bytes.NewReader(tt.data), n: &read})
			mustClass(t, err, tt.want)
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not contain %q", err, tt.text)
			}
			if read == int64(len(tt.data)) && len(tt.data) > 1<<20 {
				t.Errorf("the whole stream was read (%d bytes)", read)
			}
			if s := e.snapshot(); len(s.spool)+len(s.blobs)+len(s.images) != 0 {
				t.Errorf("left behind: %v", s)
			}
		})
	}
	// The same bounds hold for a compressed file.
	file := filepath.Join(t.TempDir(), "bomb.tar.gz")
	if err := os.WriteFile(file, bomb, 0o644); err != nil {
		t.Fatal(err)
	}
	e.p.freeSpace = freeSpace
	_, err := loadPath(ctx, e.p, file)
	mustClass(t, err, errdefs.ErrTooLarge)
}

// TestRemoveWhileLoadReads: a load whose input does not come (a client
// that stops sending) holds no lock of the store: a removal, and its
// garbage collection, go on.
func TestRemoveWhileLoadReads(t *testing.T) {
	ctx := context.Background()
	e := newBareEnv(t)
	putFakeImage(t, e.p, "Doomed", digest.FromString("doomed"))
	pr, pw := io.Pipe()
	defer pw.Close()
	// The first bytes of an archive arrive, then nothing.
	valid := manyImages(t, 3)
	go pw.Write(valid[:1536])
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loaded := make(chan error, 1)
	go func() {
		_, err := e.p.Load(lctx, pr)
		loaded <- err
	}()
	time.Sleep(50 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		_, err := e.p.Remove(ctx, RemoveOptions{Name: "Doomed"})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a removal waited for a load that reads a stalled stream")
	}
	select {
	case err := <-loaded:
		t.Fatalf("the load ended early: %v", err)
	default:
	}
	cancel()
	pw.CloseWithError(errors.New("client gone"))
	select {
	case err := <-loaded:
		if err == nil {
			t.Fatal("a load of half an archive succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the load did not end")
	}
	if s := e.snapshot(); len(s.spool) != 0 {
		t.Errorf("spool left: %v", s.spool)
	}
}

// TestArchiveRecordNames: an archive image is recorded under its
// repository without the registry's host or Docker Hub's library/, and a
// fully qualified base.name names the parent by its repository.
func TestArchiveRecordNames(t *testing.T) {
	cfg := []byte(`{"os":"windows","architecture":"amd64","rootfs":{"type":"layers","diff_ids":[]}}`)
	for _, tc := range []struct {
		name                 string
		img                  archive.Image
		ann                  map[string]string
		repo, version        string
		parentName, parentV  string
		parentDigest         string
		wantOSImage, wantErr bool
	}{
		{name: "host and port", img: archive.Image{RefName: "127.0.0.1:5000/microsoft/iis:1.0.0.0"}, repo: "microsoft/iis", version: "1.0.0.0", wantOSImage: true},
		{name: "docker hub", img: archive.Image{RefName: "docker.io/library/nanoserver:10.0.14393.0"}, repo: "nanoserver", version: "10.0.14393.0", wantOSImage: true},
		{name: "no host", img: archive.Image{RefName: "microsoft/iis:1.0.0.0"}, repo: "microsoft/iis", version: "1.0.0.0", wantOSImage: true},
		{name: "tag alone", img: archive.Image{Tag: "1.0.0.0"}, ann: map[string]string{find.AnnotationTitle: "IIS"}, repo: "iis", version: "1.0.0.0", wantOSImage: true},
		{name: "qualified base name", img: archive.Image{RefName: "registry.example:443/microsoft/iis:1.0.0.0"},
			ann:  map[string]string{find.AnnotationBaseName: "registry.example:443/windowsservercore:10.0.14393.0"},
			repo: "microsoft/iis", version: "1.0.0.0", parentName: "windowsservercore", parentV: "10.0.14393.0"},
		{name: "base name with a digest", img: archive.Image{RefName: "microsoft/iis:1.0.0.0"},
			ann:  map[string]string{find.AnnotationBaseName: "127.0.0.1:5000/windowsservercore@sha256:" + strings.Repeat("a", 64)},
			repo: "microsoft/iis", version: "1.0.0.0", parentName: "windowsservercore", parentDigest: "sha256:" + strings.Repeat("a", 64)},
		{name: "no name", img: archive.Image{}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := json.Marshal(ocispec.Manifest{
				Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
				Config:      ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
				Annotations: tc.ann,
			})
			img := tc.img
			img.Manifest = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m))}
			img.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
			c := archive.Contents{Manifests: map[digest.Digest][]byte{img.Manifest.Digest: m}, Configs: map[digest.Digest][]byte{img.Config.Digest: cfg}}
			rec, base, err := archiveRecord(img, c, time.Now())
			if tc.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("archiveRecord: %v, want an invalid argument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rec.Repository != tc.repo || rec.Version != tc.version || rec.IsOSImage != tc.wantOSImage {
				t.Errorf("record %s %s (OS image %v), want %s %s (%v)", rec.Repository, rec.Version, rec.IsOSImage, tc.repo, tc.version, tc.wantOSImage)
			}
			if tc.wantOSImage {
				if base != nil {
					t.Errorf("base %+v, want none", base)
				}
				return
			}
			if base == nil || base.Name != tc.parentName || base.Version != tc.parentV || base.Digest != tc.parentDigest {
				t.Errorf("base %+v, want %s %s %s", base, tc.parentName, tc.parentV, tc.parentDigest)
			}
		})
	}
}
