package catalog

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// indexQueries are the query forms that the stored index must answer as
// a full rebuild does, for the names names.
func indexQueries(names []string) []find.Options {
	qs := []find.Options{
		{}, {AllVersions: true}, {Name: "*"}, {Name: "*", AllVersions: true}, {Name: "?pp*", AllVersions: true},
		{Name: "app*"}, {Name: "APP/*", AllVersions: true}, {Name: "*server"}, {Name: "no-such"},
		{MinimumVersion: "1.5", AllVersions: true}, {MaximumVersion: "2.0"},
	}
	for _, n := range names {
		qs = append(qs,
			find.Options{Name: n}, find.Options{Name: strings.ToUpper(n), AllVersions: true},
			find.Options{Name: n, RequiredVersion: "2.0"}, find.Options{Name: n, MinimumVersion: "1.0", MaximumVersion: "2.0"},
			find.Options{Name: n + "*"}, find.Options{Name: n[:1] + "*", AllVersions: true},
		)
	}
	return qs
}

// checkIndex compares, for every query form, Find over the stored index
// with find.Filter over a rebuild from the repositories.
func checkIndex(t *testing.T, r *Registry, names []string) {
	t.Helper()
	ctx := context.Background()
	ms, err := r.FindManifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all := find.Index(ms)
	for _, o := range indexQueries(names) {
		got, gerr := r.Find(ctx, o)
		want, werr := find.Filter(all, o)
		if fmt.Sprint(gerr) != fmt.Sprint(werr) {
			t.Fatalf("Find(%+v): error %v, a rebuild gives %v", o, gerr, werr)
		}
		if !sameEntries(got, want) {
			t.Fatalf("Find(%+v):\n index   %s\n rebuild %s", o, entryList(got), entryList(want))
		}
	}
}

func sameEntries(a, b []api.FindEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if !x.Created.Equal(y.Created) || !reflect.DeepEqual(x.Parent, y.Parent) {
			return false
		}
		x.Created, y.Created, x.Parent, y.Parent = time.Time{}, time.Time{}, nil, nil
		if x != y {
			return false
		}
	}
	return true
}

func entryList(es []api.FindEntry) string {
	var s []string
	for _, e := range es {
		p := ""
		if e.Parent != nil {
			p = fmt.Sprintf(" <- %s:%s", e.Parent.Name, e.Parent.Version)
		}
		s = append(s, fmt.Sprintf("%s(%s)@%s %s%s", e.Name, e.Repository, e.Version, e.Digest[7:15], p))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// TestIndexAgreesWithRebuild runs random sequences of pushes, tags, retags,
// untags and deletes, with artifacts, signatures and copies among them, and
// after each step compares every query form with a rebuild.
func TestIndexAgreesWithRebuild(t *testing.T) {
	ctx := context.Background()
	repos := []string{"app/a", "app/b", "nanoserver", "mirror/nanoserver", "tools"}
	titles := []string{"", "App", "NanoServer", "nanoserver", "Tools"}
	versions := []string{"", "1.0", "1.5", "2.0", "10.0.14393.0"}
	tags := []string{"1.0", "1.5", "2.0", "latest", "stable", "10.0.14393.0"}
	names := []string{"app", "app/a", "nanoserver", "mirror/nanoserver", "tools"}
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			e := newTestEnv(t)
			rng := rand.New(rand.NewPCG(seed, 42))
			pick := func(list []string) string { return list[rng.IntN(len(list))] }
			var pushed []ManifestRecord
			repoOf := map[digest.Digest]string{}
			feed := &feedFollower{}
			for step := range 120 {
				repo, tag := pick(repos), pick(tags)
				var op string
				switch n := rng.IntN(10); {
				case n < 4 || len(pushed) == 0:
					op = "push"
					img := e.newImage(t, repo, fmt.Sprintf("layer %d", rng.IntN(8)))
					ann := map[string]string{}
					if title := pick(titles); title != "" {
						ann[find.AnnotationTitle] = title
					}
					if v := pick(versions); v != "" {
						ann[find.AnnotationVersion] = v
					}
					if len(pushed) > 0 && rng.IntN(3) == 0 {
						base := pushed[rng.IntN(len(pushed))]
						ann[find.AnnotationBaseDigest] = base.Digest.String()
						ann[find.AnnotationBaseName] = repoOf[base.Digest] + ":" + pick(tags)
					}
					if rng.IntN(8) == 0 {
						img.manifest.ArtifactType = "application/vnd.example.artifact"
					}
					if rng.IntN(8) == 0 {
						img.manifest.Layers[0].MediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
						tag = "sha256-" + strings.Repeat("ab", 32) + ".sig"
					}
					img.manifest.Annotations = ann
					img.marshal(t)
					rec := e.putImage(t, repo, tag, img)
					pushed = append(pushed, rec)
					repoOf[rec.Digest] = repo
				case n < 6:
					op = "tag" // a new tag, or a retag away from another manifest
					rec := pushed[rng.IntN(len(pushed))]
					repo = repoOf[rec.Digest]
					ra, err := e.cs.ReaderAt(ctx, rec.Digest)
					if err != nil {
						continue // deleted since
					}
					body := readAll(t, ra)
					if _, err := e.PutManifest(ctx, repo, tag, rec.MediaType, body); err != nil && !errors.Is(err, ErrManifestBlobUnknown) {
						t.Fatalf("step %d: tag: %v", step, err)
					}
				case n < 8:
					op = "untag"
					if err := e.DeleteManifest(ctx, repo, tag); err != nil && !errdefs.IsNotFound(err) {
						t.Fatalf("step %d: untag: %v", step, err)
					}
				default:
					op = "delete"
					rec := pushed[rng.IntN(len(pushed))]
					if err := e.DeleteManifest(ctx, repoOf[rec.Digest], rec.Digest.String()); err != nil && !errdefs.IsNotFound(err) {
						t.Fatalf("step %d: delete: %v", step, err)
					}
				}
				t.Logf("step %d: %s %s:%s", step, op, repo, tag)
				checkIndex(t, e.Registry, names)
				checkPages(t, e.Registry)
				feed.follow(t, e.Registry, 3)
				checkFeed(t, e.Registry, feed)
			}
		})
	}
}

// checkPages compares the pages of the listing, 2 names a page, with the
// whole listing, for each query form without a name.
func checkPages(t *testing.T, r *Registry) {
	t.Helper()
	ctx := context.Background()
	for _, o := range indexQueries(nil) {
		if o.Name != "" {
			continue
		}
		want, err := r.Find(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		var got []api.FindEntry
		last := ""
		for range 1000 {
			p, err := r.FindPage(ctx, o, last, 2)
			if err != nil {
				t.Fatalf("FindPage(%+v, %q): %v", o, last, err)
			}
			got = append(got, p.Entries...)
			if p.Next == "" {
				break
			}
			if p.Next <= last {
				t.Fatalf("FindPage(%+v, %q): next %q does not move on", o, last, p.Next)
			}
			last = p.Next
		}
		if !sameEntries(got, want) {
			t.Fatalf("pages of %+v:\n pages %s\n whole %s", o, entryList(got), entryList(want))
		}
	}
}

// feedFollower is a mirror that follows the change feed as providerd
// does.
type feedFollower struct {
	index   string
	since   uint64
	entries map[string]api.FindChange
	resyncs int
}

// follow reads the feed n changes a request until it has caught up.
func (f *feedFollower) follow(t *testing.T, r *Registry, n int) {
	t.Helper()
	for range 10000 {
		ch, err := r.Changes(context.Background(), f.since, n)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Resync || (f.entries != nil && ch.Index != f.index) {
			f.resyncs++
			f.since, f.entries = 0, nil
			continue
		}
		if f.entries == nil {
			f.entries = map[string]api.FindChange{}
		}
		f.index = ch.Index
		for _, c := range ch.Changes {
			if c.Seq <= f.since {
				t.Fatalf("change %d after since %d", c.Seq, f.since)
			}
			key := c.Repository + "@" + c.Digest
			if c.Removed {
				delete(f.entries, key)
			} else {
				f.entries[key] = c
			}
		}
		f.since = ch.Last
		if !ch.More {
			return
		}
	}
	t.Fatal("the feed never caught up")
}

// checkFeed compares what a follower of the feed holds with a rebuild.
func checkFeed(t *testing.T, r *Registry, f *feedFollower) {
	t.Helper()
	ms, err := r.FindManifests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]api.FindEntry{}
	for _, m := range ms {
		e := find.Entry(m)
		want[e.Repository+"@"+e.Digest] = e
	}
	if len(f.entries) != len(want) {
		t.Fatalf("the feed holds %d entries, a rebuild %d", len(f.entries), len(want))
	}
	for k, c := range f.entries {
		w, ok := want[k]
		if !ok || c.Entry == nil || !sameEntries([]api.FindEntry{*c.Entry}, []api.FindEntry{w}) {
			t.Fatalf("the feed's %s is %+v, a rebuild's %+v", k, c.Entry, w)
		}
	}
}

// TestFeedResyncsAfterARebuild: a follower behind a rebuild is told to
// resync, and catches up from 0 with the same entries.
func TestFeedResyncsAfterARebuild(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	for i, repo := range []string{"a", "b", "c"} {
		img := e.newImage(t, repo, fmt.Sprint("layer ", i))
		e.putImage(t, repo, "1.0", img)
	}
	f := &feedFollower{}
	f.follow(t, e.Registry, 2)
	checkFeed(t, e.Registry, f)
	if len(f.entries) != 3 {
		t.Fatalf("the feed holds %d entries, want 3", len(f.entries))
	}
	if ch, err := e.Changes(ctx, f.since, 10); err != nil || ch.Resync || len(ch.Changes) != 0 || ch.More {
		t.Fatalf("a follower that caught up: %+v, %v", ch, err)
	}
	before := f.since
	img := e.newImage(t, "d", "layer d")
	e.putImage(t, "d", "1.0", img)
	if err := e.db.Update(ctx, func(tx *bolt.Tx) error {
		return meta.GetFindBucket(tx, meta.FindState).Put(meta.KeyFindRebuild, []byte{})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.BuildIndex(ctx); err != nil {
		t.Fatal(err)
	}
	ch, err := e.Changes(ctx, before, 10)
	if err != nil || !ch.Resync {
		t.Fatalf("after a rebuild, Changes(%d) = %+v, %v; want a resync", before, ch, err)
	}
	if ch, err := e.Changes(ctx, 1<<40, 10); err != nil || !ch.Resync {
		t.Fatalf("Changes beyond the sequence = %+v, %v; want a resync", ch, err)
	}
	f.follow(t, e.Registry, 2)
	if f.resyncs != 1 {
		t.Fatalf("%d resyncs, want 1", f.resyncs)
	}
	checkFeed(t, e.Registry, f)
	if len(f.entries) != 4 {
		t.Fatalf("after the resync the feed holds %d entries, want 4", len(f.entries))
	}
}

// TestIndexSkipsArtifacts: an oras artifact, a cosign signature by tag and
// a referrer are no entries; the image they sign is one.
func TestIndexSkipsArtifacts(t *testing.T) {
	ctx := context.Background()
	e := newTestEnv(t)
	img := e.newImage(t, "nanoserver", "base")
	img.manifest.Annotations = map[string]string{find.AnnotationTitle: "NanoServer", find.AnnotationVersion: "10.0.14393.0"}
	img.marshal(t)
	base := e.putImage(t, "nanoserver", "10.0.14393.0", img)

	sig := e.newImage(t, "nanoserver", "signature")
	sig.manifest.Layers[0].MediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	sig.marshal(t)
	e.putImage(t, "nanoserver", "sha256-"+base.Digest.Encoded()+".sig", sig)

	art := e.newImage(t, "tools/notes", "notes")
	art.manifest.ArtifactType = "application/vnd.example.notes"
	art.marshal(t)
	e.putImage(t, "tools/notes", "v1", art)

	ref := e.newImage(t, "nanoserver", "sbom")
	ref.manifest.Subject = &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: base.Digest, Size: base.Size}
	ref.marshal(t)
	e.putImage(t, "nanoserver", "sbom", ref)

	got, err := e.Find(ctx, find.Options{AllVersions: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Digest != base.Digest.String() || got[0].Version != "10.0.14393.0" {
		t.Errorf("Find = %s, want NanoServer 10.0.14393.0 alone", entryList(got))
	}
}

// TestIndexMigration opens a catalog root written at schema version 2,
// before the find index (testdata/schema2-root.tar.gz: the seeded catalog,
// an oras artifact and a cosign signature), and finds the same images as a
// rebuild: 20 images, no artifact.
func TestIndexMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	untarGz(t, "testdata/schema2-root.tar.gz", dir)
	bdb, err := bolt.Open(filepath.Join(dir, "catalog.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	var version []byte
	bdb.View(func(tx *bolt.Tx) error {
		version = append(version, tx.Bucket([]byte("meta")).Get([]byte("schema"))...)
		return nil
	})
	bdb.Close()
	if len(version) != 8 || version[7] != 2 {
		t.Fatalf("fixture schema version %v, want 2", version)
	}

	db, err := meta.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cs, err := content.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistry(cs, db)
	built, err := r.BuildIndex(ctx)
	if err != nil || !built {
		t.Fatalf("BuildIndex = %v, %v; want a build", built, err)
	}
	if built, err := r.BuildIndex(ctx); err != nil || built {
		t.Fatalf("second BuildIndex = %v, %v; want none", built, err)
	}
	all, err := r.Find(ctx, find.Options{AllVersions: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 20 {
		t.Errorf("%d entries after the migration, want the 20 seeded images: %s", len(all), entryList(all))
	}
	for _, e := range all {
		if strings.HasPrefix(e.Repository, "tools/") || strings.HasSuffix(e.Version, ".sig") {
			t.Errorf("an artifact is an entry: %+v", e)
		}
	}
	checkIndex(t, r, []string{"nanoserver", "windowsservercore", "microsoft/iis", "NanoServerIIS"})
	// Writes go on from the migrated index.
	if err := r.DeleteManifest(ctx, "nanoserver", "10.0.10586.0"); err != nil {
		t.Fatal(err)
	}
	checkIndex(t, r, []string{"nanoserver"})
}

func untarGz(t *testing.T, file, dir string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestFindBuildsAMissingIndex: a Find on a migrated catalog whose index
// was not built yet builds it, and answers from it.
func TestFindBuildsAMissingIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	untarGz(t, "testdata/schema2-root.tar.gz", dir)
	db, err := meta.Open(filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cs, err := content.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistry(cs, db)
	all, err := r.Find(ctx, find.Options{AllVersions: true})
	if err != nil || len(all) != 20 {
		t.Fatalf("Find before any build: %d entries, %v; want 20", len(all), err)
	}
	if built, err := r.BuildIndex(ctx); err != nil || built {
		t.Fatalf("BuildIndex after Find = %v, %v; want no build left", built, err)
	}
}
