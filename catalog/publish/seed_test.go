package publish

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
)

// pinnedNanoServer14393 is the manifest digest of NanoServer 10.0.14393.0
// seeded with the default options. It is the same on every machine; a
// change here changes every seeded catalog, and must be deliberate.
const pinnedNanoServer14393 = "sha256:ae82bca4c1299c353a478c93714d1bb245847ba8850c0c268ea04226241680d6"

func seedDigests(t *testing.T, tg Target, o SeedOptions) (SeedReport, map[string]digest.Digest) {
	t.Helper()
	rep, err := Seed(context.Background(), tg, o)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]digest.Digest{}
	for _, it := range rep.Items {
		m[it.Repository+":"+it.Version] = it.Digest
	}
	return rep, m
}

func TestSeed(t *testing.T) {
	ctx := context.Background()
	a, b := newMemTarget(), newMemTarget()
	var progress []SeedItem
	repA, digestsA := seedDigests(t, a, SeedOptions{Progress: func(it SeedItem) { progress = append(progress, it) }})
	_, digestsB := seedDigests(t, b, SeedOptions{})

	if len(repA.Items) != 20 || repA.Published() != 20 || repA.Skipped() != 0 {
		t.Fatalf("first seed: %d items, %d published, %d skipped", len(repA.Items), repA.Published(), repA.Skipped())
	}
	if len(progress) != 20 || progress[0] != repA.Items[0] || progress[19] != repA.Items[19] {
		t.Errorf("progress saw %d items", len(progress))
	}
	for k, d := range digestsA {
		if digestsB[k] != d {
			t.Errorf("%s: %s in one store, %s in the other", k, d, digestsB[k])
		}
	}
	if got := digestsA["nanoserver:10.0.14393.0"]; got != pinnedNanoServer14393 {
		t.Errorf("NanoServer 10.0.14393.0 = %s, pinned %s", got, pinnedNanoServer14393)
	}

	// A second seed changes nothing.
	before, err := a.TaggedManifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	writes := a.writes()
	rep2, digests2 := seedDigests(t, a, SeedOptions{})
	if rep2.Skipped() != 20 {
		t.Errorf("second seed skipped %d of %d", rep2.Skipped(), len(rep2.Items))
	}
	if a.writes() != writes {
		t.Errorf("second seed wrote %d times", a.writes()-writes)
	}
	for k, d := range digestsA {
		if digests2[k] != d {
			t.Errorf("%s: %s then %s", k, d, digests2[k])
		}
	}
	after, err := a.TaggedManifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("%d tags, then %d", len(before), len(after))
	}
	for i := range before {
		x, y := before[i], after[i]
		if x.Repository != y.Repository || x.Tag != y.Tag || x.Manifest.Digest != y.Manifest.Digest || !x.Manifest.Pushed.Equal(y.Manifest.Pushed) {
			t.Errorf("tag %s:%s changed: %+v -> %+v", x.Repository, x.Tag, x.Manifest, y.Manifest)
		}
	}
	// 20 version tags and one latest per repository (2 bases + 16 apps).
	if len(after) != 20+18 {
		t.Errorf("%d tags, want 38", len(after))
	}
}

func TestSeedCatalog(t *testing.T) {
	ctx := context.Background()
	tg := newMemTarget()
	if _, err := Seed(ctx, tg, SeedOptions{BaseLayerSize: 64 << 10, AppLayerSize: 4 << 10}); err != nil {
		t.Fatal(err)
	}
	entries, err := tg.Find(ctx, find.Options{AllVersions: true})
	if err != nil {
		t.Fatal(err)
	}
	all, err := find.Filter(entries, find.Options{AllVersions: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 20 {
		t.Fatalf("%d images, want 20", len(all))
	}
	bases, err := find.Filter(entries, find.Options{Name: "*server*", AllVersions: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"NanoServer 10.0.10586.0":        "Container OS Image of Windows Server 2016 Technical Preview 4 : Nano Server",
		"NanoServer 10.0.14393.0":        "Container OS Image of Windows Server 2016 : Nano Server",
		"WindowsServerCore 10.0.10586.0": "Container OS Image of Windows Server 2016 Technical Preview 4 : Windows Server Core",
		"WindowsServerCore 10.0.14393.0": "Container OS Image of Windows Server 2016 : Windows Server Core",
	}
	if len(bases) != 4 {
		t.Fatalf("bases: %d", len(bases))
	}
	for _, e := range bases {
		k := e.Name + " " + e.Version
		if want[k] != e.Description || !e.IsOSImage || e.Parent != nil || e.Publisher != "CN=Microsoft" || e.OSVersion != e.Version {
			t.Errorf("%s: %+v", k, e)
		}
		wantYear := 2016
		if strings.HasSuffix(e.Version, "10586.0") {
			wantYear = 2015
		}
		if e.Created.Year() != wantYear {
			t.Errorf("%s created %v", k, e.Created)
		}
	}
	wsc, err := find.Filter(entries, find.Options{Name: "WindowsServerCore", RequiredVersion: "10.0.14393.0"})
	if err != nil {
		t.Fatal(err)
	}
	apps, err := find.Filter(entries, find.Options{Name: "microsoft/*"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range apps {
		names = append(names, strings.TrimPrefix(e.Name, "microsoft/"))
		if e.IsOSImage || e.Parent == nil || e.Parent.Name != "WindowsServerCore" || e.Parent.Version != "10.0.14393.0" ||
			e.Parent.Digest != wsc[0].Digest || e.Version != "1.0.0.0" || e.Publisher != "CN=Microsoft" ||
			e.OSVersion != "10.0.14393.0" || !strings.HasSuffix(e.Description, "in a Windows Server Core based container.") {
			t.Errorf("%s: %+v parent %+v", e.Name, e, e.Parent)
		}
	}
	if got := strings.Join(names, " "); got != "aspnet django dotnet35 golang httpd iis mongodb mysql nginx node php python rails redis ruby sqlite" {
		t.Errorf("apps: %s", got)
	}
	iis := getImage(t, tg, "microsoft/iis", "latest")
	if len(iis.manifest.Layers) != 2 || iis.manifest.Annotations[ocispec.AnnotationBaseImageName] != "windowsservercore:10.0.14393.0" {
		t.Errorf("microsoft/iis manifest: %+v", iis.manifest)
	}
	// latest is the highest version of each base repository.
	for _, repo := range []string{"nanoserver", "windowsservercore"} {
		rec, err := tg.ResolveManifest(ctx, repo, "latest")
		if err != nil || rec.Annotations[ocispec.AnnotationVersion] != "10.0.14393.0" {
			t.Errorf("%s:latest -> %v, %v", repo, rec.Annotations, err)
		}
	}
}

func TestSeedOptions(t *testing.T) {
	if _, err := Seed(context.Background(), newMemTarget(), SeedOptions{BaseLayerSize: -1}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("negative size: %v", err)
	}
	// Uncompressed: each base blob is exactly the tar of the files.
	tg := newMemTarget()
	if _, err := Seed(context.Background(), tg, SeedOptions{BaseLayerSize: 100 << 10, Compression: CompressionNone}); err != nil {
		t.Fatal(err)
	}
	img := getImage(t, tg, "nanoserver", "10.0.14393.0")
	l := img.manifest.Layers[0]
	if l.MediaType != ocispec.MediaTypeImageLayer || l.Digest != img.config.RootFS.DiffIDs[0] || l.Size < 100<<10 || l.Size > 100<<10+16<<10 {
		t.Errorf("uncompressed base layer: %+v", l)
	}
}

// TestPublishFlatMemory publishes a layer far larger than what the
// publishing path may allocate: the layer must be streamed.
func TestPublishFlatMemory(t *testing.T) {
	const size = 96 << 20
	tg := newMemTarget()
	tg.discard = true
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Publish(context.Background(), tg, Spec{
		Name: "Big", Version: "1", Publisher: "x", Layer: GeneratedLayer("big", size),
	}, WithCompression(CompressionNone))
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("publishing %d MiB allocated %d KiB", size>>20, alloc>>10)
	if alloc > 16<<20 {
		t.Errorf("publishing a %d MiB layer allocated %d MiB", size>>20, alloc>>20)
	}
}

// BenchmarkGenerateLayer measures the generation of a base layer, without
// compression, into a hashing sink: the floor of a 1 GiB seed.
func BenchmarkGenerateLayer(b *testing.B) {
	const size = 256 << 20
	src := GeneratedLayer("bench", size).src.(tarSource)
	b.SetBytes(size)
	for b.Loop() {
		if _, err := streamLayer(context.Background(), src, testCreated, CompressionNone, hashSink); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGenerateLayerGzip is the same with gzip.
func BenchmarkGenerateLayerGzip(b *testing.B) {
	const size = 64 << 20
	src := GeneratedLayer("bench", size).src.(tarSource)
	b.SetBytes(size)
	for b.Loop() {
		if _, err := streamLayer(context.Background(), src, testCreated, CompressionGzip, hashSink); err != nil {
			b.Fatal(err)
		}
	}
}
