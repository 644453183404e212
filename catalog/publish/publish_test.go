package publish

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
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/store/content"
)

var testCreated = time.Date(2016, 10, 12, 8, 30, 0, 0, time.UTC)

// image is what a test reads back of a published image.
type readImage struct {
	rec      catalog.ManifestRecord
	manifest ocispec.Manifest
	config   ocispec.Image
}

func getImage(t *testing.T, tg Target, repo, ref string) readImage {
	t.Helper()
	ctx := context.Background()
	rec, ra, err := tg.GetManifest(ctx, repo, ref)
	if err != nil {
		t.Fatalf("GetManifest(%s:%s): %v", repo, ref, err)
	}
	defer ra.Close()
	body, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(body) != rec.Digest {
		t.Fatalf("manifest bytes do not match digest %s", rec.Digest)
	}
	var img readImage
	img.rec = rec
	if err := json.Unmarshal(body, &img.manifest); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(getBlob(t, tg, repo, img.manifest.Config.Digest), &img.config); err != nil {
		t.Fatal(err)
	}
	return img
}

func getBlob(t *testing.T, tg Target, repo string, d digest.Digest) []byte {
	t.Helper()
	ra, err := tg.OpenBlob(context.Background(), repo, d)
	if err != nil {
		t.Fatalf("OpenBlob(%s, %s): %v", repo, d, err)
	}
	defer ra.Close()
	b, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(b) != d {
		t.Fatalf("blob %s: content digest %s", d, digest.FromBytes(b))
	}
	return b
}

// layerTar returns the uncompressed tar of a layer blob, checking that the
// diff_id is its digest.
func layerTar(t *testing.T, blob []byte, mediaType string, diffID digest.Digest) []byte {
	t.Helper()
	raw := blob
	switch mediaType {
	case ocispec.MediaTypeImageLayerGzip:
		zr, err := gzip.NewReader(bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	case ocispec.MediaTypeImageLayer:
	default:
		t.Fatalf("layer media type %q", mediaType)
	}
	if got := digest.FromBytes(raw); got != diffID {
		t.Fatalf("diff_id %s, but the uncompressed layer is %s", diffID, got)
	}
	return raw
}

type tarEntry struct {
	hdr  *tar.Header
	body string
}

func readTar(t *testing.T, b []byte) []tarEntry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []tarEntry
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{hdr: hdr, body: string(body)})
	}
}

func writeFile(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
}

func testDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "b.txt"), "bee", 0o600)
	writeFile(t, filepath.Join(dir, "a", "z.txt"), "zed", 0o644)
	writeFile(t, filepath.Join(dir, "a", "run.cmd"), "@echo off", 0o700)
	writeFile(t, filepath.Join(dir, "inetpub", "wwwroot", "index.html"), "<h1>IIS</h1>", 0o644)
	if err := os.Symlink("b.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPublishFromDirectory(t *testing.T) {
	ctx := context.Background()
	dir := testDir(t)
	spec := Spec{
		Name:        "DemoImage",
		Version:     "1.0",
		Publisher:   "Demo",
		Description: "A demo image.",
		Created:     testCreated.Add(123 * time.Millisecond),
		Layer:       LayerFromPath(dir),
	}
	tg := newMemTarget()
	rec, err := Publish(ctx, tg, spec)
	if err != nil {
		t.Fatal(err)
	}
	img := getImage(t, tg, "demoimage", "1.0.0.0")
	if img.rec.Digest != rec.Digest {
		t.Fatalf("tag 1.0.0.0 -> %s, Publish returned %s", img.rec.Digest, rec.Digest)
	}
	if _, err := tg.ResolveManifest(ctx, "demoimage", "latest"); !errdefs.IsNotFound(err) {
		t.Errorf("latest tagged without WithLatest: %v", err)
	}

	m := img.manifest
	if m.SchemaVersion != 2 || m.MediaType != ocispec.MediaTypeImageManifest || m.Config.MediaType != ocispec.MediaTypeImageConfig {
		t.Errorf("manifest header: %d %s %s", m.SchemaVersion, m.MediaType, m.Config.MediaType)
	}
	wantAnn := map[string]string{
		find.AnnotationTitle:       "DemoImage",
		find.AnnotationVersion:     "1.0.0.0",
		find.AnnotationVendor:      "CN=Demo",
		find.AnnotationDescription: "A demo image.",
		find.AnnotationCreated:     "2016-10-12T08:30:00Z",
	}
	if fmt.Sprint(m.Annotations) != fmt.Sprint(wantAnn) {
		t.Errorf("annotations = %v, want %v", m.Annotations, wantAnn)
	}
	c := img.config
	if c.OS != "windows" || c.Architecture != "amd64" || c.OSVersion != "1.0.0.0" {
		t.Errorf("platform = %s/%s %s", c.OS, c.Architecture, c.OSVersion)
	}
	if c.Created == nil || !c.Created.Equal(testCreated) {
		t.Errorf("config created = %v, want %v", c.Created, testCreated)
	}
	if len(m.Layers) != 1 || len(c.RootFS.DiffIDs) != 1 || len(c.History) != 1 || c.RootFS.Type != "layers" {
		t.Fatalf("layers %d, diff_ids %d, history %d", len(m.Layers), len(c.RootFS.DiffIDs), len(c.History))
	}
	if c.History[0].CreatedBy != "Apply image 1.0.0.0" {
		t.Errorf("history created_by = %q", c.History[0].CreatedBy)
	}
	l := m.Layers[0]
	if l.MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Errorf("layer media type %s", l.MediaType)
	}
	raw := layerTar(t, getBlob(t, tg, "demoimage", l.Digest), l.MediaType, c.RootFS.DiffIDs[0])

	var got []string
	for _, e := range readTar(t, raw) {
		h := e.hdr
		got = append(got, fmt.Sprintf("%s %c %o %q %q", h.Name, h.Typeflag, h.Mode, h.Linkname, e.body))
		if !h.ModTime.Equal(testCreated) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %v uid %d gid %d uname %q gname %q", h.Name, h.ModTime, h.Uid, h.Gid, h.Uname, h.Gname)
		}
	}
	want := []string{
		`a/ 5 755 "" ""`,
		`a/run.cmd 0 755 "" "@echo off"`,
		`a/z.txt 0 644 "" "zed"`,
		`b.txt 0 644 "" "bee"`,
		`inetpub/ 5 755 "" ""`,
		`inetpub/wwwroot/ 5 755 "" ""`,
		`inetpub/wwwroot/index.html 0 644 "" "<h1>IIS</h1>"`,
		`link 2 777 "b.txt" ""`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("layer entries:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The same directory, touched, publishes the same digest elsewhere.
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "b.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	rec2, err := Publish(ctx, newMemTarget(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if rec2.Digest != rec.Digest {
		t.Errorf("same directory gave %s then %s", rec.Digest, rec2.Digest)
	}

	// Uncompressed: the blob is the tar itself.
	tg3 := newMemTarget()
	if _, err := Publish(ctx, tg3, spec, WithCompression(CompressionNone)); err != nil {
		t.Fatal(err)
	}
	img3 := getImage(t, tg3, "demoimage", "1.0.0.0")
	l3 := img3.manifest.Layers[0]
	if l3.MediaType != ocispec.MediaTypeImageLayer || l3.Digest != img3.config.RootFS.DiffIDs[0] || l3.Digest != c.RootFS.DiffIDs[0] {
		t.Errorf("uncompressed layer %s %s, diff_id %s, gzip diff_id %s", l3.MediaType, l3.Digest, img3.config.RootFS.DiffIDs[0], c.RootFS.DiffIDs[0])
	}
}

// writeLayerFile writes a tar of the given files, gzip-compressed if gz,
// with a gzip header that has a name and an mtime (as gzip(1) writes).
func writeLayerFile(t *testing.T, path string, gz bool, files map[string]string) (file, tarBytes []byte) {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, name := range []string{"Files/", "Files/app.txt", "Files/data.bin"} {
		body, ok := files[name]
		if !ok {
			continue
		}
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: testCreated}
		if strings.HasSuffix(name, "/") {
			hdr.Typeflag, hdr.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	file = tb.Bytes()
	if gz {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		zw.Name, zw.ModTime = "layer.tar", time.Now()
		if _, err := zw.Write(tb.Bytes()); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		file = zb.Bytes()
	}
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	return file, tb.Bytes()
}

func TestPublishFromLayerFile(t *testing.T) {
	files := map[string]string{"Files/": "", "Files/app.txt": "hello", "Files/data.bin": strings.Repeat("x", 100000)}
	tests := []struct {
		name      string
		file      string
		gz        bool
		mediaType string
	}{
		{name: "tar.gz", file: "layer.tar.gz", gz: true, mediaType: ocispec.MediaTypeImageLayerGzip},
		{name: "tgz", file: "layer.tgz", gz: true, mediaType: ocispec.MediaTypeImageLayerGzip},
		{name: "tar", file: "layer.tar", mediaType: ocispec.MediaTypeImageLayer},
		{name: "gzip detected by magic, not name", file: "misnamed.tar", gz: true, mediaType: ocispec.MediaTypeImageLayerGzip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.file)
			file, tarBytes := writeLayerFile(t, path, tt.gz, files)
			tg := newMemTarget()
			// Compression applies to packed layers only: a file is used as it is.
			_, err := Publish(context.Background(), tg, Spec{
				Name: "FileImage", Version: "2.1", Publisher: "CN=Files", Created: testCreated,
				Layer: LayerFromPath(path),
			}, WithCompression(CompressionNone))
			if err != nil {
				t.Fatal(err)
			}
			img := getImage(t, tg, "fileimage", "2.1.0.0")
			l := img.manifest.Layers[0]
			if l.MediaType != tt.mediaType {
				t.Errorf("media type %s, want %s", l.MediaType, tt.mediaType)
			}
			blob := getBlob(t, tg, "fileimage", l.Digest)
			if !bytes.Equal(blob, file) || l.Size != int64(len(file)) {
				t.Errorf("blob is not the file as it is")
			}
			wantDiff := digest.FromBytes(tarBytes)
			if img.config.RootFS.DiffIDs[0] != wantDiff {
				t.Errorf("diff_id %s, want the digest of the decompressed stream %s", img.config.RootFS.DiffIDs[0], wantDiff)
			}
			layerTar(t, blob, l.MediaType, img.config.RootFS.DiffIDs[0])
		})
	}
}

func TestPublishChild(t *testing.T) {
	ctx := context.Background()
	tg := newMemTarget()
	for _, v := range []string{"10.0.10586.0", "10.0.14393.0"} {
		_, err := Publish(ctx, tg, Spec{
			Name: "WindowsServerCore", Version: v, Publisher: "CN=Microsoft", Created: testCreated,
			Layer: GeneratedLayer("WindowsServerCore "+v, 64<<10),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	base := getImage(t, tg, "windowsservercore", "10.0.14393.0")

	dir := testDir(t)
	// Parent by display name, in another case, without a version: the latest.
	rec, err := Publish(ctx, tg, Spec{
		Name: "WindowsServerCoreIIS", Version: "1.0", Publisher: "Demo", Created: testCreated,
		Parent: "windowsSERVERcore", Layer: LayerFromPath(dir),
	}, WithLatest())
	if err != nil {
		t.Fatal(err)
	}
	child := getImage(t, tg, "windowsservercoreiis", "latest")
	if child.rec.Digest != rec.Digest {
		t.Fatalf("latest -> %s, want %s", child.rec.Digest, rec.Digest)
	}
	m, c := child.manifest, child.config
	if len(m.Layers) != 2 || m.Layers[0].Digest != base.manifest.Layers[0].Digest {
		t.Fatalf("child layers %v, want the parent's %s first", m.Layers, base.manifest.Layers[0].Digest)
	}
	if len(c.RootFS.DiffIDs) != 2 || c.RootFS.DiffIDs[0] != base.config.RootFS.DiffIDs[0] {
		t.Errorf("child diff_ids %v", c.RootFS.DiffIDs)
	}
	if len(c.History) != 2 || c.History[0].CreatedBy != "Apply image 10.0.14393.0" || c.History[1].CreatedBy != "Apply image 1.0.0.0" {
		t.Errorf("child history %+v", c.History)
	}
	if c.OSVersion != "10.0.14393.0" {
		t.Errorf("child os.version %q, want the parent's", c.OSVersion)
	}
	if got := m.Annotations[find.AnnotationBaseName]; got != "windowsservercore:10.0.14393.0" {
		t.Errorf("base.name %q", got)
	}
	if got := m.Annotations[find.AnnotationBaseDigest]; got != base.rec.Digest.String() {
		t.Errorf("base.digest %q, want %s", got, base.rec.Digest)
	}
	// Every blob is linked into the child's repository.
	for _, l := range m.Layers {
		getBlob(t, tg, "windowsservercoreiis", l.Digest)
	}

	// Parent by repository with an explicit short version.
	_, err = Publish(ctx, tg, Spec{
		Name: "OldIIS", Version: "1.0", Publisher: "Demo", Created: testCreated,
		Parent: "windowsservercore:10.0.10586", Layer: LayerFromPath(dir),
	})
	if err != nil {
		t.Fatal(err)
	}
	old := getImage(t, tg, "oldiis", "1.0.0.0")
	if got := old.manifest.Annotations[find.AnnotationBaseName]; got != "windowsservercore:10.0.10586.0" {
		t.Errorf("base.name %q", got)
	}

	// With the catalog's host, base.name is fully qualified.
	_, err = Publish(ctx, tg, Spec{
		Name: "HostIIS", Version: "1.0", Publisher: "Demo", Created: testCreated,
		Parent: "windowsservercore:10.0.10586", Layer: LayerFromPath(dir),
	}, WithBaseHost("catalog.example.com:5000"))
	if err != nil {
		t.Fatal(err)
	}
	hosted := getImage(t, tg, "hostiis", "1.0.0.0")
	if got := hosted.manifest.Annotations[find.AnnotationBaseName]; got != "catalog.example.com:5000/windowsservercore:10.0.10586.0" {
		t.Errorf("base.name with a host %q", got)
	}
	for _, bad := range []string{"http://catalog.example.com", "catalog.example.com/v2", "user@host", "a b", ""} {
		if err := CheckBaseHost(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("CheckBaseHost(%q) = %v, want InvalidArgument", bad, err)
		}
	}
	if _, err := Publish(ctx, tg, Spec{Name: "BadHost", Version: "1", Parent: "windowsservercore", Layer: LayerFromPath(dir)},
		WithBaseHost("https://x")); !errdefs.IsInvalidArgument(err) {
		t.Errorf("publish with a bad base host: %v", err)
	}

	// A grandchild repeats both ancestors.
	_, err = Publish(ctx, tg, Spec{
		Name: "IISApp", Version: "3", Publisher: "Demo", Created: testCreated,
		Parent: "WindowsServerCoreIIS:1.0.0.0", Layer: GeneratedLayer("app", 10),
	})
	if err != nil {
		t.Fatal(err)
	}
	gc := getImage(t, tg, "iisapp", "3.0.0.0")
	if len(gc.manifest.Layers) != 3 || len(gc.config.RootFS.DiffIDs) != 3 || len(gc.config.History) != 3 {
		t.Errorf("grandchild: %d layers, %d diff_ids, %d history", len(gc.manifest.Layers), len(gc.config.RootFS.DiffIDs), len(gc.config.History))
	}
	if gc.config.OSVersion != "10.0.14393.0" {
		t.Errorf("grandchild os.version %q", gc.config.OSVersion)
	}
}

func TestPublishBadInput(t *testing.T) {
	tmp := t.TempDir()
	notTar := filepath.Join(tmp, "notes.txt")
	writeFile(t, notTar, strings.Repeat("not a tar archive\n", 64), 0o644)
	badGzip := filepath.Join(tmp, "bad.tar.gz")
	if err := os.WriteFile(badGzip, []byte{0x1f, 0x8b, 0, 0, 0}, 0o644); err != nil {
		t.Fatal(err)
	}
	good := Spec{
		Name: "Good", Version: "1.0", Publisher: "Demo", Created: testCreated,
		Layer: GeneratedLayer("good", 100),
	}
	tests := []struct {
		name   string
		edit   func(*Spec)
		opts   []Opt
		class  error
		naming string
	}{
		{name: "empty name", edit: func(s *Spec) { s.Name = " " }, class: errdefs.ErrInvalidArgument, naming: "name"},
		{name: "wildcard name", edit: func(s *Spec) { s.Name = "Nano*" }, class: errdefs.ErrInvalidArgument, naming: "name"},
		{name: "colon in name", edit: func(s *Spec) { s.Name = "a:b" }, class: errdefs.ErrInvalidArgument, naming: "name"},
		{name: "long name", edit: func(s *Spec) { s.Name = strings.Repeat("n", MaxNameLength+1) }, class: errdefs.ErrInvalidArgument, naming: "name"},
		{name: "name gives a bad repository", edit: func(s *Spec) { s.Name = "Demo Image" }, class: errdefs.ErrInvalidArgument, naming: "repository"},
		{name: "bad repository", edit: func(s *Spec) { s.Repository = "Upper/Case" }, class: errdefs.ErrInvalidArgument, naming: "repository"},
		{name: "empty version", edit: func(s *Spec) { s.Version = "" }, class: errdefs.ErrInvalidArgument, naming: "version"},
		{name: "bad version", edit: func(s *Spec) { s.Version = "1.0-beta" }, class: errdefs.ErrInvalidArgument, naming: "version"},
		{name: "five-part version", edit: func(s *Spec) { s.Version = "1.2.3.4.5" }, class: errdefs.ErrInvalidArgument, naming: "version"},
		{name: "empty publisher", edit: func(s *Spec) { s.Publisher = "" }, class: errdefs.ErrInvalidArgument, naming: "publisher"},
		{name: "bad publisher", edit: func(s *Spec) { s.Publisher = "CN=" }, class: errdefs.ErrInvalidArgument, naming: "publisher"},
		{name: "control in description", edit: func(s *Spec) { s.Description = "a\x00b" }, class: errdefs.ErrInvalidArgument, naming: "description"},
		{name: "long description", edit: func(s *Spec) { s.Description = strings.Repeat("d", MaxDescriptionLength+1) }, class: errdefs.ErrInvalidArgument, naming: "description"},
		{name: "missing parent", edit: func(s *Spec) { s.Parent = "NoSuchBase" }, class: errdefs.ErrNotFound, naming: "parent"},
		{name: "missing parent version", edit: func(s *Spec) { s.Parent = "Good:9.0" }, class: errdefs.ErrNotFound, naming: "parent"},
		{name: "wildcard parent", edit: func(s *Spec) { s.Parent = "Nano*" }, class: errdefs.ErrInvalidArgument, naming: "parent"},
		{name: "empty parent version", edit: func(s *Spec) { s.Parent = "Good:" }, class: errdefs.ErrInvalidArgument, naming: "parent"},
		{name: "no layer", edit: func(s *Spec) { s.Layer = Layer{} }, class: errdefs.ErrInvalidArgument, naming: "layer"},
		{name: "empty layer path", edit: func(s *Spec) { s.Layer = LayerFromPath("") }, class: errdefs.ErrInvalidArgument, naming: "layer"},
		{name: "missing layer file", edit: func(s *Spec) { s.Layer = LayerFromPath(filepath.Join(tmp, "nope.tar")) }, class: errdefs.ErrNotFound, naming: "layer"},
		{name: "layer file is not a tar", edit: func(s *Spec) { s.Layer = LayerFromPath(notTar) }, class: errdefs.ErrInvalidArgument, naming: "layer"},
		{name: "layer file is bad gzip", edit: func(s *Spec) { s.Layer = LayerFromPath(badGzip) }, class: errdefs.ErrInvalidArgument, naming: "layer"},
		{name: "negative generated size", edit: func(s *Spec) { s.Layer = GeneratedLayer("x", -1) }, class: errdefs.ErrInvalidArgument, naming: "layer"},
		{name: "bad compression", opts: []Opt{WithCompression(Compression(7))}, class: errdefs.ErrInvalidArgument, naming: "compression"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := newMemTarget()
			spec := good
			if tt.edit != nil {
				tt.edit(&spec)
			}
			_, err := Publish(context.Background(), tg, spec, tt.opts...)
			if !errors.Is(err, tt.class) {
				t.Fatalf("Publish() error = %v, want class %v", err, tt.class)
			}
			if !strings.Contains(err.Error(), tt.naming) {
				t.Errorf("error %q does not name %q", err, tt.naming)
			}
			if n := tg.writes(); n != 0 {
				t.Errorf("%d writes after a refused publish", n)
			}
		})
	}
}

func TestPublishBadInputWithParentWritesNothing(t *testing.T) {
	// A missing parent in a catalog that has other images: still nothing
	// is written.
	ctx := context.Background()
	tg := newMemTarget()
	if _, err := Publish(ctx, tg, Spec{Name: "Base", Version: "1", Publisher: "x", Layer: GeneratedLayer("b", 10)}); err != nil {
		t.Fatal(err)
	}
	before := tg.writes()
	_, err := Publish(ctx, tg, Spec{Name: "Child", Version: "1", Publisher: "x", Parent: "Base:2", Layer: GeneratedLayer("c", 10)})
	if !errdefs.IsNotFound(err) {
		t.Fatalf("error = %v, want NotFound", err)
	}
	if tg.writes() != before {
		t.Errorf("writes went from %d to %d", before, tg.writes())
	}
}

func TestPublishIdempotent(t *testing.T) {
	ctx := context.Background()
	tg := newMemTarget()
	spec := Spec{Name: "Same", Version: "1.0", Publisher: "Demo", Created: testCreated, Layer: GeneratedLayer("same", 300<<10)}
	first, err := Publish(ctx, tg, spec, WithLatest())
	if err != nil {
		t.Fatal(err)
	}
	uploads := tg.blobPuts
	again, err := Publish(ctx, tg, spec, WithLatest())
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != first.Digest || !again.Pushed.Equal(first.Pushed) {
		t.Errorf("second publish: %s pushed %v; first %s pushed %v", again.Digest, again.Pushed, first.Digest, first.Pushed)
	}
	if tg.blobPuts != uploads {
		t.Errorf("second publish uploaded %d blobs", tg.blobPuts-uploads)
	}

	// New content under the same version moves the tag (and latest).
	spec.Layer = GeneratedLayer("changed", 300<<10)
	moved, err := Publish(ctx, tg, spec, WithLatest())
	if err != nil {
		t.Fatal(err)
	}
	if moved.Digest == first.Digest {
		t.Fatal("changed content kept the digest")
	}
	for _, ref := range []string{"1.0.0.0", "latest"} {
		if rec, err := tg.ResolveManifest(ctx, "same", ref); err != nil || rec.Digest != moved.Digest {
			t.Errorf("%s -> %v, %v; want %s", ref, rec.Digest, err, moved.Digest)
		}
	}
}

func TestGeneratedLayer(t *testing.T) {
	tests := []struct {
		name string
		size int64
	}{
		{name: "zero", size: 0},
		{name: "smaller than the text", size: 5},
		{name: "odd", size: 1_000_003},
		{name: "larger than the buffer", size: 3*genBufferSize + 17},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := GeneratedLayer("NanoServer 10.0.14393.0", tt.size).src.(*generatedSource)
			var a, b bytes.Buffer
			if err := src.writeTar(&a, testCreated); err != nil {
				t.Fatal(err)
			}
			if err := src.writeTar(&b, testCreated); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Bytes(), b.Bytes()) {
				t.Fatal("two passes differ")
			}
			var total int64
			prev := ""
			for _, e := range readTar(t, a.Bytes()) {
				if !strings.HasPrefix(e.hdr.Name, "Files/") {
					t.Errorf("entry %q outside Files/", e.hdr.Name)
				}
				if e.hdr.Name <= prev {
					t.Errorf("entry %q after %q", e.hdr.Name, prev)
				}
				prev = e.hdr.Name
				total += int64(len(e.body))
			}
			if total != tt.size {
				t.Errorf("files add up to %d, want %d", total, tt.size)
			}
		})
	}
	// Different seeds differ.
	var x, y bytes.Buffer
	_ = GeneratedLayer("a", 1000).src.(*generatedSource).writeTar(&x, testCreated)
	_ = GeneratedLayer("b", 1000).src.(*generatedSource).writeTar(&y, testCreated)
	if bytes.Equal(x.Bytes(), y.Bytes()) {
		t.Error("seeds a and b give the same layer")
	}
}

func TestAppLayerIsText(t *testing.T) {
	src := appLayer("microsoft/iis", "1.0.0.0", "IIS.", 16<<10).src.(*generatedSource)
	var b bytes.Buffer
	if err := src.writeTar(&b, testCreated); err != nil {
		t.Fatal(err)
	}
	var total int64
	var names []string
	for _, e := range readTar(t, b.Bytes()) {
		names = append(names, e.hdr.Name)
		total += int64(len(e.body))
		for _, r := range e.body {
			if r != '\r' && r != '\n' && (r < ' ' || r > '~') {
				t.Fatalf("%s: non-text byte %q", e.hdr.Name, r)
			}
		}
	}
	if total != 16<<10 {
		t.Errorf("files add up to %d", total)
	}
	want := "Files/ Files/Program Files/ Files/Program Files/iis/ Files/Program Files/iis/README.txt Files/Program Files/iis/VERSION.txt Files/Program Files/iis/install.log"
	if strings.Join(names, " ") != want {
		t.Errorf("entries %v", names)
	}
}

func TestGzipDiffID(t *testing.T) {
	// The diff_id of a packed gzip layer is the digest of the tar, which
	// is also the blob digest of the same layer uncompressed.
	ctx := context.Background()
	spec := Spec{Name: "G", Version: "1", Publisher: "x", Created: testCreated, Layer: GeneratedLayer("g", 1<<20)}
	gz, none := newMemTarget(), newMemTarget()
	if _, err := Publish(ctx, gz, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := Publish(ctx, none, spec, WithCompression(CompressionNone)); err != nil {
		t.Fatal(err)
	}
	ig, in := getImage(t, gz, "g", "1.0.0.0"), getImage(t, none, "g", "1.0.0.0")
	lg, ln := ig.manifest.Layers[0], in.manifest.Layers[0]
	raw := layerTar(t, getBlob(t, gz, "g", lg.Digest), lg.MediaType, ig.config.RootFS.DiffIDs[0])
	if digest.FromBytes(raw) != ln.Digest || ln.Digest != in.config.RootFS.DiffIDs[0] {
		t.Errorf("gzip diff_id %s, uncompressed blob %s", ig.config.RootFS.DiffIDs[0], ln.Digest)
	}
	// The gzip header is deterministic: no name, no mtime.
	blob := getBlob(t, gz, "g", lg.Digest)
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header name %q mtime %v", zr.Name, zr.ModTime)
	}
}

func TestPublishCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tg := newMemTarget()
	_, err := Publish(ctx, tg, Spec{Name: "C", Version: "1", Publisher: "x", Layer: GeneratedLayer("c", 1<<20)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	if len(tg.tags) != 0 {
		t.Errorf("tags written: %v", tg.tags)
	}
}

// failingTarget fails PutBlob after reading some bytes, as a full disk would.
type failingTarget struct {
	*memTarget
	after int64
}

var errDiskFull = errors.New("disk full")

func (f failingTarget) PutBlob(ctx context.Context, repo string, expected digest.Digest, size int64, rd io.Reader) (content.Info, error) {
	if expected != "" {
		return f.memTarget.PutBlob(ctx, repo, expected, size, rd)
	}
	if _, err := io.CopyN(io.Discard, rd, f.after); err != nil {
		return content.Info{}, err
	}
	return content.Info{}, errDiskFull
}

func TestPublishUploadFailure(t *testing.T) {
	for _, l := range []struct {
		name  string
		layer func(t *testing.T) Layer
	}{
		{"generated", func(*testing.T) Layer { return GeneratedLayer("f", 4<<20) }},
		{"gzip file", func(t *testing.T) Layer {
			path := filepath.Join(t.TempDir(), "l.tgz")
			writeLayerFile(t, path, true, map[string]string{"Files/data.bin": strings.Repeat("y", 4<<20)})
			return LayerFromPath(path)
		}},
	} {
		t.Run(l.name, func(t *testing.T) {
			tg := failingTarget{memTarget: newMemTarget(), after: 1000}
			_, err := Publish(context.Background(), tg, Spec{Name: "F", Version: "1", Publisher: "x", Layer: l.layer(t)})
			if !errors.Is(err, errDiskFull) {
				t.Fatalf("error = %v, want %v", err, errDiskFull)
			}
			if len(tg.tags) != 0 {
				t.Errorf("tags written: %v", tg.tags)
			}
		})
	}
}

func TestParseCompression(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Compression
		err  bool
	}{
		{"", CompressionGzip, false}, {"gzip", CompressionGzip, false}, {"GZIP", CompressionGzip, false},
		{"none", CompressionNone, false}, {"zstd", 0, true},
	} {
		got, err := ParseCompression(tt.in)
		if (err != nil) != tt.err || (!tt.err && got != tt.want) {
			t.Errorf("ParseCompression(%q) = %v, %v", tt.in, got, err)
		}
		if tt.err && !errdefs.IsInvalidArgument(err) {
			t.Errorf("ParseCompression(%q) error class: %v", tt.in, err)
		}
		if !tt.err && got.String() != strings.ToLower(strings.TrimSpace(tt.in)) && tt.in != "" {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}
