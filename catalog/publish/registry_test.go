package publish

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// testRegistry is a real Registry over a content store and a bbolt file in
// a temporary directory.
func testRegistry(t *testing.T) *catalog.Registry {
	t.Helper()
	dir := t.TempDir()
	cs, err := content.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := meta.Open(filepath.Join(dir, "meta.db"), meta.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return catalog.NewRegistry(cs, db)
}

func TestRegistrySeed(t *testing.T) {
	ctx := context.Background()
	r1, r2 := testRegistry(t), testRegistry(t)
	o := SeedOptions{}
	_, d1 := seedDigests(t, r1, o)
	_, d2 := seedDigests(t, r2, o)
	if len(d1) != 20 {
		t.Fatalf("%d images", len(d1))
	}
	for k, d := range d1 {
		if d2[k] != d {
			t.Errorf("%s: %s and %s", k, d, d2[k])
		}
	}
	if got := d1["nanoserver:10.0.14393.0"]; got != pinnedNanoServer14393 {
		t.Errorf("NanoServer 10.0.14393.0 = %s, pinned %s", got, pinnedNanoServer14393)
	}

	before, err := r1.TaggedManifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep, d3 := seedDigests(t, r1, o)
	if rep.Skipped() != 20 {
		t.Errorf("second seed skipped %d of %d", rep.Skipped(), len(rep.Items))
	}
	for k, d := range d1 {
		if d3[k] != d {
			t.Errorf("%s: %s then %s", k, d, d3[k])
		}
	}
	after, err := r1.TaggedManifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) || len(after) != 38 {
		t.Fatalf("%d tags, then %d; want 38", len(before), len(after))
	}
	for i := range before {
		x, y := before[i], after[i]
		if x.Repository != y.Repository || x.Tag != y.Tag || x.Manifest.Digest != y.Manifest.Digest || !x.Manifest.Pushed.Equal(y.Manifest.Pushed) {
			t.Errorf("%s:%s changed: %+v -> %+v", x.Repository, x.Tag, x.Manifest, y.Manifest)
		}
	}

	// Every blob of an application image is served from its repository.
	iis := getImage(t, r1, "microsoft/iis", "1.0.0.0")
	for _, l := range iis.manifest.Layers {
		getBlob(t, r1, "microsoft/iis", l.Digest)
	}
	if iis.rec.OSVersion != "10.0.14393.0" {
		t.Errorf("record os.version %q", iis.rec.OSVersion)
	}
}

// TestRegistryFind runs the Find requests of the acceptance list over a
// seeded real registry.
func TestRegistryFind(t *testing.T) {
	ctx := context.Background()
	r := testRegistry(t)
	if _, err := Seed(ctx, r, SeedOptions{BaseLayerSize: 32 << 10, AppLayerSize: 2 << 10}); err != nil {
		t.Fatal(err)
	}
	entries, err := r.Find(ctx, find.Options{AllVersions: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts find.Options
		want string // "Name@Version ..." or the error text
		err  error
	}{
		{name: "nano*", opts: find.Options{Name: "nano*"}, want: "NanoServer@10.0.14393.0"},
		{name: "minimum version", opts: find.Options{MinimumVersion: "10.0.14393.0"},
			want: "NanoServer@10.0.14393.0 WindowsServerCore@10.0.14393.0"},
		{name: "all versions of the bases", opts: find.Options{Name: "*Server*", AllVersions: true},
			want: "NanoServer@10.0.10586.0 NanoServer@10.0.14393.0 WindowsServerCore@10.0.10586.0 WindowsServerCore@10.0.14393.0"},
		{name: "unknown required version", opts: find.Options{Name: "NanoServer", RequiredVersion: "10.0.99999.0"},
			err: errdefs.ErrNotFound,
			want: "No match was found for the specified search criteria and package name 'NanoServer'." +
				" RequiredVersion '10.0.99999.0' was not found."},
		{name: "required with minimum", opts: find.Options{RequiredVersion: "10.0.14393.0", MinimumVersion: "10.0.10586.0"},
			err:  errdefs.ErrInvalidArgument,
			want: "You cannot use the parameters RequiredVersion and either MinimumVersion or MaximumVersion in the same command."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := find.Filter(entries, tt.opts)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || err.Error() != tt.want {
					t.Fatalf("Filter() error = %v, want %q (%v)", err, tt.want, tt.err)
				}
				if errdefs.HTTPStatus(err) != map[error]int{errdefs.ErrNotFound: 404, errdefs.ErrInvalidArgument: 400}[tt.err] {
					t.Errorf("status %d", errdefs.HTTPStatus(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, e := range got {
				s = append(s, e.Name+"@"+e.Version)
			}
			if strings.Join(s, " ") != tt.want {
				t.Errorf("Filter() = %s, want %s", strings.Join(s, " "), tt.want)
			}
		})
	}
	all, err := find.Filter(entries, find.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 18 {
		t.Errorf("latest of each name: %d entries, want 2 bases and 16 applications", len(all))
	}
}

func TestRegistryPublish(t *testing.T) {
	ctx := context.Background()
	r := testRegistry(t)
	if _, err := Publish(ctx, r, Spec{
		Name: "NanoServer", Version: "10.0.10586.0", Publisher: "CN=Microsoft", Created: testCreated,
		Layer: GeneratedLayer("n", 200<<10),
	}, WithLatest()); err != nil {
		t.Fatal(err)
	}

	// From a directory, on NanoServer, as New-ContainerImage would.
	dir := testDir(t)
	rec, err := Publish(ctx, r, Spec{
		Name: "NanoServerIIS", Version: "1.0", Publisher: "Demo", Parent: "NanoServer", Created: testCreated,
		Layer: LayerFromPath(dir),
	})
	if err != nil {
		t.Fatal(err)
	}
	child := getImage(t, r, "nanoserveriis", "1.0.0.0")
	if child.rec.Digest != rec.Digest || len(child.manifest.Layers) != 2 {
		t.Fatalf("child %s with %d layers", child.rec.Digest, len(child.manifest.Layers))
	}
	for i, l := range child.manifest.Layers {
		layerTar(t, getBlob(t, r, "nanoserveriis", l.Digest), l.MediaType, child.config.RootFS.DiffIDs[i])
	}

	// From a tar.gz file.
	path := filepath.Join(t.TempDir(), "layer.tar.gz")
	file, _ := writeLayerFile(t, path, true, map[string]string{"Files/": "", "Files/app.txt": "app"})
	if _, err := Publish(ctx, r, Spec{
		Name: "FromFile", Version: "1", Publisher: "Demo", Parent: "nanoserveriis:1.0.0.0", Layer: LayerFromPath(path),
	}); err != nil {
		t.Fatal(err)
	}
	ff := getImage(t, r, "fromfile", "1.0.0.0")
	if len(ff.manifest.Layers) != 3 || string(getBlob(t, r, "fromfile", ff.manifest.Layers[2].Digest)) != string(file) {
		t.Errorf("fromfile layers %v", ff.manifest.Layers)
	}

	// Find sees the parent by name and version.
	entries, err := r.Find(ctx, find.Options{AllVersions: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := find.Filter(entries, find.Options{Name: "NanoServerIIS"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Publisher != "CN=Demo" || got[0].IsOSImage || got[0].Parent == nil ||
		got[0].Parent.Name != "NanoServer" || got[0].Parent.Version != "10.0.10586.0" {
		t.Errorf("NanoServerIIS: %+v", got)
	}

	// Bad input leaves the registry as it was.
	before, err := r.TaggedManifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []Spec{
		{Name: "X", Version: "1", Publisher: "Demo", Parent: "Missing", Layer: LayerFromPath(dir)},
		{Name: "X", Version: "one", Publisher: "Demo", Layer: LayerFromPath(dir)},
		{Name: "X", Version: "1", Publisher: "Demo", Layer: LayerFromPath(filepath.Join(dir, "missing"))},
	} {
		if _, err := Publish(ctx, r, spec); err == nil {
			t.Errorf("Publish(%+v) succeeded", spec)
		}
	}
	after, err := r.TaggedManifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("%d tags, then %d", len(before), len(after))
	}
	repos, err := r.Repositories(ctx, -1, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(repos, " ") != "fromfile nanoserver nanoserveriis" {
		t.Errorf("repositories %v", repos)
	}
}
