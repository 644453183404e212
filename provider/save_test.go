package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/provider/archive"
	"github.com/containerprovider/containerprovider/provider/hostfs"
	"github.com/containerprovider/containerprovider/store/content"
)

// newBareEnv is a provider with no source at all, as on a host without
// network.
func newBareEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, root: filepath.Join(t.TempDir(), "provider")}
	p, err := New(context.Background(), Config{Root: e.root, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	e.p = p
	return e
}

// records reads every image record, by digest.
func (e *env) records() map[digest.Digest]imageRecord {
	e.t.Helper()
	imgs, err := e.p.Images(context.Background(), GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[digest.Digest]imageRecord{}
	for _, img := range imgs {
		rec, ok := e.record(digest.Digest(img.Digest))
		if !ok {
			e.t.Fatalf("no record of %s", img.Digest)
		}
		out[rec.Digest] = rec
	}
	return out
}

// sameRecord compares what a round trip keeps: everything but Source and
// Installed.
func sameRecord(t *testing.T, got, want imageRecord) {
	t.Helper()
	g, w := got, want
	g.Source, w.Source = "", ""
	g.Installed = w.Installed
	g.Index, w.Index = nil, nil
	if !g.Created.Equal(w.Created) {
		t.Errorf("%s: created %v, want %v", want.label(), g.Created, w.Created)
	}
	g.Created = w.Created
	gj, wj := mustJSON(t, g), mustJSON(t, w)
	if gj != wj {
		t.Errorf("record after the round trip:\n got %s\nwant %s", gj, wj)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sortedDigests(ds []digest.Digest) []digest.Digest {
	out := slices.Clone(ds)
	slices.Sort(out)
	return out
}

// loadPath opens path as a server does for the daemon's own user and
// installs the archive.
func loadPath(ctx context.Context, p *Provider, path string) (api.LoadResult, error) {
	f, err := OpenArchive(path)
	if err != nil {
		return api.LoadResult{}, err
	}
	defer f.Close()
	return p.LoadFile(ctx, f, path)
}

func TestSaveLoadRoundTrip(t *testing.T) {
	a := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	a.mustInstall(api.InstallRequest{Name: "microsoft/iis"})
	demoSession(t, a)
	if _, err := a.p.Commit(ctx, demoCommit()); err != nil {
		t.Fatal(err)
	}
	want := a.records()
	dir := t.TempDir()

	// Two saves to a directory: the default file names.
	var files []string
	for _, tt := range []struct{ name, file string }{
		{name: "microsoft/iis", file: "microsoft_iis-1-0-0-0.tar"},
		{name: "DemoImage", file: "DemoImage-1-0-0-0.tar"},
	} {
		res, err := a.p.SaveToPath(ctx, api.SaveRequest{Name: tt.name, Path: dir}, hostfs.OS())
		if err != nil {
			t.Fatal(err)
		}
		if res.Path != filepath.Join(dir, tt.file) {
			t.Errorf("saved to %s, want %s", res.Path, tt.file)
		}
		if fi, err := os.Stat(res.Path); err != nil || fi.Size() != res.Size || res.Size == 0 {
			t.Errorf("file %s: %v, size %d", res.Path, err, res.Size)
		}
		if res.Image.Name == "" || res.Image.Installed.IsZero() {
			t.Errorf("saved image %+v", res.Image)
		}
		files = append(files, res.Path)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("directory holds %d entries, want the 2 archives", len(entries))
	}

	// A fresh provider with no source installs both files.
	b := newBareEnv(t)
	res, err := loadPath(ctx, b.p, files[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := imageNames(res.Images); !slices.Equal(got, []string{"WindowsServerCore 10.0.14393.0", "microsoft/iis 1.0.0.0"}) {
		t.Errorf("loaded %q, want the parent first", got)
	}
	for _, img := range res.Images {
		if img.Source != sourceFile {
			t.Errorf("%s: source %q", img.Name, img.Source)
		}
	}
	res, err = loadPath(ctx, b.p, files[1])
	if err != nil {
		t.Fatal(err)
	}
	if got := imageNames(res.Images); !slices.Equal(got, []string{"NanoServer 10.0.10586.0", "DemoImage 1.0.0.0"}) {
		t.Errorf("loaded %q", got)
	}
	got := b.records()
	if len(got) != len(want) {
		t.Fatalf("%d records after the round trip, want %d", len(got), len(want))
	}
	for d, w := range want {
		g, ok := got[d]
		if !ok {
			t.Errorf("%s (%s) missing after the round trip", w.label(), d)
			continue
		}
		sameRecord(t, g, w)
	}
	if g, w := sortedDigests(b.blobs()), sortedDigests(a.blobs()); !slices.Equal(g, w) {
		t.Errorf("blobs after the round trip: %d, want %d", len(g), len(w))
	}
	demo, _ := b.p.Images(ctx, GetOptions{Name: "DemoImage"})
	if len(demo) != 1 || demo[0].IsOSImage || demo[0].Publisher != "CN=Demo" || demo[0].ParentImage == nil ||
		demo[0].ParentImage.Name != "NanoServer" || demo[0].ParentImage.Publisher != "CN=Microsoft" {
		t.Errorf("DemoImage after the round trip: %+v", demo)
	}
	if !slices.Equal(demo[0].Refs, []string{"demoimage:1.0.0.0", "demoimage:latest"}) {
		t.Errorf("refs %q", demo[0].Refs)
	}

	// Loading again keeps what is installed, without error.
	res, err = loadPath(ctx, b.p, files[1])
	if err != nil || len(res.Images) != 2 {
		t.Fatalf("second load: %+v, %v", res, err)
	}
	// A container on a loaded image, and a commit on it, work as on the
	// first host.
	if _, err := b.p.CreateContainer(ctx, api.ContainerCreateRequest{Image: "DemoImage", Name: "again"}); err != nil {
		t.Fatal(err)
	}

	// The stream form of Save, into Load on a third provider.
	var buf bytes.Buffer
	img, err := a.p.Save(ctx, api.SaveRequest{ID: want[digest.Digest(demo[0].Digest)].Digest.Encoded()[:10]}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != "DemoImage" {
		t.Errorf("saved by id: %+v", img)
	}
	c := newBareEnv(t)
	res, err = c.p.Load(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := imageNames(res.Images); !slices.Equal(got, []string{"NanoServer 10.0.10586.0", "DemoImage 1.0.0.0"}) {
		t.Errorf("loaded from a stream: %q", got)
	}
	if entries, err := os.ReadDir(filepath.Join(c.root, tmpDir)); err != nil || len(entries) != 0 {
		t.Errorf("spool left: %v, %v", entries, err)
	}
}

func TestSaveFromSourceWithoutInstalling(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	iis := e.cat.item("microsoft/iis:1.0.0.0")
	wsc := e.cat.item("windowsservercore:10.0.14393.0")

	var buf bytes.Buffer
	img, err := e.p.Save(ctx, api.SaveRequest{Name: "microsoft/iis"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != iis.Digest.String() || img.Source != "catalog" || !img.Installed.IsZero() || img.ParentImage == nil ||
		img.ParentImage.Name != "WindowsServerCore" {
		t.Errorf("saved %+v", img)
	}
	if imgs, _ := e.p.Images(ctx, GetOptions{}); len(imgs) != 0 {
		t.Errorf("Save installed %q", imageNames(imgs))
	}
	if b := e.blobs(); len(b) != 0 {
		t.Errorf("Save left %d blobs in the store", len(b))
	}
	if st, _ := e.p.cs.ListStatuses(ctx); len(st) != 0 {
		t.Errorf("Save left ingests: %+v", st)
	}

	b := newBareEnv(t)
	res, err := b.p.Load(ctx, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 2 || res.Images[0].Digest != wsc.Digest.String() || res.Images[1].Digest != iis.Digest.String() {
		t.Errorf("loaded %+v", res.Images)
	}
	if got := res.Images[1]; got.Publisher != "CN=Microsoft" || got.IsOSImage || got.ParentImage.Digest != wsc.Digest.String() {
		t.Errorf("loaded child %+v", got)
	}

	// With a source named, the source is read even when the image is
	// installed.
	e.mustInstall(nano10586())
	nano := e.cat.item("nanoserver:10.0.10586.0")
	e.cat.tap.waitIdle(t)
	e.cat.tap.reset()
	buf.Reset()
	img, err = e.p.Save(ctx, api.SaveRequest{Name: "NanoServer", Source: "catalog",
		VersionOptions: api.VersionOptions{RequiredVersion: "10.0.10586.0"}}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != nano.Digest.String() || !img.Installed.IsZero() {
		t.Errorf("saved from the source: %+v", img)
	}
	layer := e.cat.blobsOf("nanoserver:10.0.10586.0")[1]
	if gets, _, _ := e.cat.tap.counts(layer); gets != 1 {
		t.Errorf("layer fetched %d times from the source, want 1", gets)
	}
	// Without one, the installed image is saved, from the store.
	e.cat.tap.reset()
	buf.Reset()
	img, err = e.p.Save(ctx, api.SaveRequest{Name: "nanoserver"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if img.Installed.IsZero() || img.Source != "catalog" {
		t.Errorf("saved the installed image: %+v", img)
	}
	if gets, _, _ := e.cat.tap.counts(layer); gets != 0 {
		t.Errorf("layer of an installed image fetched %d times", gets)
	}

	refused := []struct {
		name string
		req  api.SaveRequest
		want error
	}{
		{name: "nothing", req: api.SaveRequest{}, want: errdefs.ErrInvalidArgument},
		{name: "name and id", req: api.SaveRequest{Name: "NanoServer", ID: "abcd"}, want: errdefs.ErrInvalidArgument},
		{name: "wildcard", req: api.SaveRequest{Name: "Nano*"}, want: errdefs.ErrInvalidArgument},
		{name: "unknown", req: api.SaveRequest{Name: "nothing"}, want: errdefs.ErrNotFound},
		{name: "unknown id", req: api.SaveRequest{ID: "ffffffff"}, want: errdefs.ErrNotFound},
		{name: "unknown source", req: api.SaveRequest{Name: "NanoServer", Source: "nowhere"}, want: errdefs.ErrNotFound},
		{name: "id with source", req: api.SaveRequest{ID: nano.Digest.String(), Source: "catalog"}, want: errdefs.ErrInvalidArgument},
		{name: "bad versions", req: api.SaveRequest{Name: "NanoServer", VersionOptions: api.VersionOptions{MinimumVersion: "2", MaximumVersion: "1"}},
			want: errdefs.ErrInvalidArgument},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			buf.Reset()
			_, err := e.p.Save(ctx, tt.req, &buf)
			mustClass(t, err, tt.want)
			if buf.Len() != 0 {
				t.Errorf("a refused save wrote %d bytes", buf.Len())
			}
		})
	}
}

func TestSaveToPathRules(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	e.mustInstall(nano10586())
	base := t.TempDir()
	def := "NanoServer-10-0-10586-0.tar"
	save := func(path string, force bool) (api.SaveResult, error) {
		return e.p.SaveToPath(ctx, api.SaveRequest{Name: "NanoServer", Path: path, Force: force}, hostfs.OS())
	}
	readOnlyFile := filepath.Join(base, "ro", "ro.tar")
	readOnlyDir := filepath.Join(base, "rodir")
	for _, d := range []string{filepath.Dir(readOnlyFile), readOnlyDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(readOnlyFile, []byte("keep"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(readOnlyDir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(readOnlyDir, 0o755) })

	tests := []struct {
		name     string
		path     string
		force    bool
		want     error
		text     string
		wantPath string
	}{
		{name: "directory", path: base, wantPath: filepath.Join(base, def)},
		{name: "exists", path: base, want: errdefs.ErrAlreadyExists, text: "exists; use --force to overwrite"},
		{name: "exists as a file path", path: filepath.Join(base, def), want: errdefs.ErrAlreadyExists, text: "use --force"},
		{name: "exists forced", path: base, force: true, wantPath: filepath.Join(base, def)},
		{name: "file", path: filepath.Join(base, "custom.tar"), wantPath: filepath.Join(base, "custom.tar")},
		{name: "missing directory", path: filepath.Join(base, "new") + "/", want: errdefs.ErrNotFound,
			text: "does not exist; use --force to create it"},
		{name: "missing directory forced", path: filepath.Join(base, "new") + "/", force: true,
			wantPath: filepath.Join(base, "new", def)},
		{name: "missing parent of a file", path: filepath.Join(base, "a", "b", "x.tar"), want: errdefs.ErrNotFound, text: "--force"},
		{name: "missing parent forced", path: filepath.Join(base, "a", "b", "x.tar"), force: true,
			wantPath: filepath.Join(base, "a", "b", "x.tar")},
		{name: "read-only file", path: readOnlyFile, force: true, want: errdefs.ErrPermissionDenied, text: "read-only"},
		{name: "read-only directory", path: readOnlyDir, want: errdefs.ErrPermissionDenied, text: "read-only"},
		{name: "no path", path: " ", want: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := save(tt.path, tt.force)
			if tt.want != nil {
				mustClass(t, err, tt.want)
				if !strings.Contains(err.Error(), tt.text) {
					t.Errorf("error %q does not contain %q", err, tt.text)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Path != tt.wantPath {
				t.Errorf("path %s, want %s", res.Path, tt.wantPath)
			}
			b, err := os.ReadFile(res.Path)
			if err != nil || int64(len(b)) != res.Size {
				t.Fatalf("file: %d bytes, %v; result says %d", len(b), err, res.Size)
			}
			// The file is a whole archive: it loads.
			ra, err := os.Open(res.Path)
			if err != nil {
				t.Fatal(err)
			}
			defer ra.Close()
			cs, err := content.NewStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			c, err := archive.Read(ctx, ra, res.Size, cs, archive.Limits{})
			// The image is named with the host of its source's registry.
			want := strings.TrimPrefix(e.cat.srv.URL, "http://") + "/nanoserver:10.0.10586.0"
			if err != nil || len(c.Images) != 1 || c.Images[0].RefName != want {
				t.Errorf("archive.Read: %+v, %v; want one image named %s", c.Images, err, want)
			}
		})
	}
	if b, _ := os.ReadFile(readOnlyFile); string(b) != "keep" {
		t.Errorf("read-only file changed: %q", b)
	}
	// No temporary file is left anywhere.
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".tmp") {
			t.Errorf("temporary file left: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLoadRefusalsChangeNothing(t *testing.T) {
	a := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	a.mustInstall(api.InstallRequest{Name: "microsoft/iis"})
	iis := a.cat.item("microsoft/iis:1.0.0.0")
	var good bytes.Buffer
	if _, err := a.p.Save(ctx, api.SaveRequest{Name: "microsoft/iis"}, &good); err != nil {
		t.Fatal(err)
	}
	// The child alone, without its parent.
	var orphan bytes.Buffer
	rec, _ := a.record(iis.Digest)
	err := archive.Write(ctx, &orphan, []archive.Image{{
		RefName: "microsoft/iis:1.0.0.0", Manifest: plainDescriptor(rec.Manifest), Config: rec.Config, Layers: rec.Layers,
	}}, func(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
		ra, err := a.p.cs.ReaderAt(ctx, desc.Digest)
		if err != nil {
			return nil, err
		}
		return readAtCloser{SectionReader: content.NewSectionReader(ra), c: ra}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A layer with one byte flipped.
	layer := a.readBlob(rec.Layers[len(rec.Layers)-1].Digest)
	tampered := bytes.Clone(good.Bytes())
	i := bytes.Index(tampered, layer[:min(len(layer), 512)])
	if i < 0 {
		t.Fatal("layer not found in the archive")
	}
	tampered[i+10] ^= 0xff

	b := newBareEnv(t)
	// An image already installed on b under a name the archive uses, with
	// another digest.
	other := digest.FromString("another windowsservercore")
	if err := b.p.db.Update(ctx, func(tx *bolt.Tx) error {
		return putImage(tx, imageRecord{Name: "WindowsServerCore", Repository: "windowsservercore", Version: "10.0.14393.0",
			Digest: other, IsOSImage: true})
	}); err != nil {
		t.Fatal(err)
	}
	writeFile := func(name string, data []byte) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		path string
		want error
		text string
	}{
		{name: "garbage", path: writeFile("garbage.tar", bytes.Repeat([]byte("garbage!"), 1000)), want: errdefs.ErrInvalidArgument},
		{name: "truncated", path: writeFile("truncated.tar", good.Bytes()[:good.Len()/2]), want: errdefs.ErrInvalidArgument},
		{name: "tampered layer", path: writeFile("tampered.tar", tampered), want: errdefs.ErrInvalidArgument},
		{name: "missing parent", path: writeFile("orphan.tar", orphan.Bytes()), want: errdefs.ErrFailedPrecondition,
			text: "windowsservercore:10.0.14393.0"},
		{name: "name taken", path: writeFile("good.tar", good.Bytes()), want: errdefs.ErrConflict, text: "WindowsServerCore 10.0.14393.0"},
		{name: "missing file", path: filepath.Join(t.TempDir(), "none.tar"), want: errdefs.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadPath(ctx, b.p, tt.path)
			mustClass(t, err, tt.want)
			t.Log(err)
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not contain %q", err, tt.text)
			}
			if imgs, _ := b.p.Images(ctx, GetOptions{}); !slices.Equal(imageNames(imgs), []string{"WindowsServerCore 10.0.14393.0"}) {
				t.Errorf("images after a refused load: %q", imageNames(imgs))
			}
			if blobs := b.blobs(); len(blobs) != 0 {
				t.Errorf("%d blobs after a refused load", len(blobs))
			}
			if st, _ := b.p.cs.ListStatuses(ctx); len(st) != 0 {
				t.Errorf("ingests after a refused load: %+v", st)
			}
			if entries, _ := os.ReadDir(filepath.Join(b.root, tmpDir)); len(entries) != 0 {
				t.Errorf("spool files after a refused load: %v", entries)
			}
		})
	}
	_, err = b.p.Load(ctx, bytes.NewReader(tampered))
	mustClass(t, err, errdefs.ErrInvalidArgument)
	if entries, _ := os.ReadDir(filepath.Join(b.root, tmpDir)); len(entries) != 0 {
		t.Errorf("spool files after a refused Load: %v", entries)
	}
}

func TestSaveFileName(t *testing.T) {
	tests := []struct{ name, version, want string }{
		{"NanoServer", "10.0.10586.0", "NanoServer-10-0-10586-0.tar"},
		{"microsoft/iis", "1.0.0.0", "microsoft_iis-1-0-0-0.tar"},
		{"DemoImage", "", "DemoImage.tar"},
	}
	for _, tt := range tests {
		if got := SaveFileName(tt.name, tt.version); got != tt.want {
			t.Errorf("SaveFileName(%q, %q) = %q, want %q", tt.name, tt.version, got, tt.want)
		}
	}
}
