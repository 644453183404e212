package mirror

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/store/meta"
)

func newMirror(t *testing.T) *Mirror {
	t.Helper()
	db, err := meta.Open(filepath.Join(t.TempDir(), "provider.db"), meta.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return New(db, "src")
}

func dg(c string) string { return "sha256:" + strings.Repeat(c, 64) }

func ids(t *testing.T, m *Mirror, name string) []string {
	t.Helper()
	es, err := m.Candidates(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if e.Source != "src" {
			t.Errorf("entry %s@%s: source %q", e.Repository, e.Digest, e.Source)
		}
		out = append(out, e.Repository+":"+e.Version)
	}
	slices.Sort(out)
	return out
}

// TestApplyChanges: the feed's puts and removals change the entries and
// the count, parents resolve within the mirror, and Reset empties it.
func TestApplyChanges(t *testing.T) {
	ctx := context.Background()
	m := newMirror(t)
	if st, n, err := m.State(ctx); err != nil || n != 0 || st.Complete {
		t.Fatalf("a new mirror: %+v, %d, %v", st, n, err)
	}
	changes := []api.FindChange{
		{Seq: 1, Repository: "base", Digest: dg("1"), Entry: &api.FindEntry{Name: "Base", Version: "1.0", IsOSImage: true, Publisher: "CN=P"}},
		{Seq: 2, Repository: "app", Digest: dg("2"), Entry: &api.FindEntry{Name: "App", Version: "2.0"}, BaseName: "base:1.0", BaseDigest: dg("1")},
	}
	if err := m.ApplyChanges(ctx, changes, State{Mode: ModeFeed, Index: "i", Seq: 2, Complete: true}); err != nil {
		t.Fatal(err)
	}
	app, err := m.Candidates(ctx, "app")
	if err != nil || len(app) != 1 || app[0].Parent == nil || app[0].Parent.Name != "Base" || app[0].Parent.Publisher != "CN=P" {
		t.Fatalf("app: %+v, %v", app, err)
	}
	if e, ok, err := m.WithDigest(ctx, dg("1")); err != nil || !ok || e.Name != "Base" || e.Source != "src" {
		t.Fatalf("WithDigest: %+v %v %v", e, ok, err)
	}
	if err := m.ApplyChanges(ctx, []api.FindChange{{Seq: 3, Repository: "base", Digest: dg("1"), Removed: true}},
		State{Mode: ModeFeed, Index: "i", Seq: 3, Complete: true}); err != nil {
		t.Fatal(err)
	}
	st, n, err := m.State(ctx)
	if err != nil || n != 1 || st.Seq != 3 || !slices.Equal(ids(t, m, ""), []string{"app:2.0"}) {
		t.Fatalf("after a removal: %+v, %d entries, %v", st, n, err)
	}
	if err := m.Reset(ctx, State{Mode: ModeCrawl}); err != nil {
		t.Fatal(err)
	}
	if st, n, err := m.State(ctx); err != nil || n != 0 || st.Mode != ModeCrawl || len(ids(t, m, "")) != 0 {
		t.Fatalf("after a reset: %+v, %d, %v", st, n, err)
	}
}

// TestCrawlRecords: a repository's entries follow its tags; artifacts are
// none; a pass's end drops the repositories it did not list and the
// manifests nothing points at.
func TestCrawlRecords(t *testing.T) {
	ctx := context.Background()
	m := newMirror(t)
	st := State{Mode: ModeCrawl, Pass: 1}
	if err := m.ListRepositories(ctx, []string{"a", "b"}, st); err != nil {
		t.Fatal(err)
	}
	if p, err := m.Pending(ctx, 1, "", 10); err != nil || !slices.Equal(p, []string{"a", "b"}) {
		t.Fatalf("pending %q, %v", p, err)
	}
	img := func(d, v string) Manifest {
		return Manifest{Digest: d, Image: true, Annotations: map[string]string{find.AnnotationVersion: v}, Size: 10}
	}
	art := Manifest{Digest: dg("9"), Image: false}
	if err := m.PutRepository(ctx, "a", Repository{Listed: 1, Crawled: 1, Tags: map[string]string{"1.0": dg("1"), "latest": dg("1"), "notes": dg("9")}},
		[]Manifest{img(dg("1"), "1.0"), art}, true); err != nil {
		t.Fatal(err)
	}
	if err := m.PutRepository(ctx, "b", Repository{Listed: 1, Crawled: 1, Tags: map[string]string{"2.0": dg("2")}}, []Manifest{img(dg("2"), "2.0")}, true); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, m, ""); !slices.Equal(got, []string{"a:1.0", "b:2.0"}) {
		t.Fatalf("entries %q", got)
	}
	if p, err := m.Pending(ctx, 1, "", 10); err != nil || len(p) != 0 {
		t.Fatalf("pending after the crawl %q, %v", p, err)
	}
	// A retag in a: 1.0 moves to a new manifest.
	if err := m.PutRepository(ctx, "a", Repository{Listed: 1, Crawled: 1, Tags: map[string]string{"1.0": dg("3")}}, []Manifest{img(dg("3"), "1.0")}, false); err != nil {
		t.Fatal(err)
	}
	es, err := m.Candidates(ctx, "a")
	if err != nil || len(es) != 1 || es[0].Digest != dg("3") {
		t.Fatalf("a after a retag: %+v, %v", es, err)
	}
	// Pass 2 lists a only.
	st = State{Mode: ModeCrawl, Pass: 2}
	if err := m.ListRepositories(ctx, []string{"a"}, st); err != nil {
		t.Fatal(err)
	}
	dropped, err := m.EndPass(ctx, 2, State{Mode: ModeCrawl, Pass: 2, PassDone: true, Complete: true})
	if err != nil || dropped != 1 {
		t.Fatalf("EndPass: %d dropped, %v", dropped, err)
	}
	if got := ids(t, m, ""); !slices.Equal(got, []string{"a:1.0"}) {
		t.Fatalf("entries after the pass %q", got)
	}
	known, err := m.Manifests(ctx, []string{dg("1"), dg("2"), dg("3"), dg("9")})
	if err != nil || len(known) != 1 || known[dg("3")].Digest != dg("3") {
		t.Fatalf("manifests kept after the pass: %v, %v", known, err)
	}
	if _, n, err := m.State(ctx); err != nil || n != 1 {
		t.Fatalf("count %d, %v", n, err)
	}
	if err := m.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, n, err := m.State(ctx); err != nil || n != 0 {
		t.Fatalf("a deleted mirror: %d, %v", n, err)
	}
}
