package provider

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider/mirror"
)

// slowSource is a source whose first sync writes part of the mirror and
// then waits for release.
type slowSource struct {
	name    string
	release chan struct{}
}

func (s slowSource) Name() string { return s.name }
func (s slowSource) Sync(ctx context.Context, m *mirror.Mirror) error {
	err := m.ApplyChanges(ctx, []api.FindChange{{Seq: 1, Repository: "first", Digest: "sha256:" + strings.Repeat("1", 64),
		Entry: &api.FindEntry{Name: "First", Version: "1.0", IsOSImage: true}}}, mirror.State{Mode: mirror.ModeFeed, Index: "i", Seq: 1})
	if err != nil {
		return err
	}
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return m.ApplyChanges(ctx, []api.FindChange{{Seq: 2, Repository: "second", Digest: "sha256:" + strings.Repeat("2", 64),
		Entry: &api.FindEntry{Name: "Second", Version: "1.0", IsOSImage: true}}},
		mirror.State{Mode: mirror.ModeFeed, Index: "i", Seq: 2, Complete: true, LastSync: time.Now()})
}
func (s slowSource) Lookup(context.Context, *mirror.Mirror, string) error { return nil }
func (s slowSource) Manifest(context.Context, string, string) (ocispec.Descriptor, []byte, error) {
	return ocispec.Descriptor{}, nil, errdefs.ErrUnavailable
}
func (s slowSource) Blob(context.Context, string, digest.Digest, int64) (io.ReadCloser, error) {
	return nil, errdefs.ErrUnavailable
}

// TestFindWarnsWhileIncomplete: while a mirror's first sync runs, Find
// answers what the mirror holds, with a warning, and not as if it were
// complete; the source list says so too.
func TestFindWarnsWhileIncomplete(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, testBaseLayerSize, func(p *Provider) {
		p.firstSyncWait = 50 * time.Millisecond
		real := p.newSource
		p.newSource = func(s api.Source) (Source, error) {
			if s.Name == "slow" {
				return slowSource{s.Name, release}, nil
			}
			return real(s)
		}
	})
	ctx := context.Background()
	if _, err := e.p.AddSource(ctx, api.Source{Name: "slow", Location: "http://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	res, err := e.p.Find(ctx, FindOptions{Name: "*", Source: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 1 || res.Images[0].Name != "First" || len(res.Warnings) != 1 ||
		!strings.Contains(res.Warnings[0], "source slow: the index is incomplete") {
		t.Fatalf("Find during the first sync: %v, warnings %q", entryIDs(res.Images), res.Warnings)
	}
	sources, err := e.p.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sources {
		if s.Name == "slow" && (s.Status == nil || s.Status.Complete || !s.Status.Syncing || s.Status.Entries != 1) {
			t.Fatalf("status of slow during its first sync: %+v", s.Status)
		}
	}
	close(release)
	deadline := time.Now().Add(testTimeout)
	for {
		res, err = e.p.Find(ctx, FindOptions{Name: "*", Source: "slow"})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Warnings) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(res.Images) != 2 || len(res.Warnings) != 0 {
		t.Fatalf("Find after the first sync: %v, warnings %q", entryIDs(res.Images), res.Warnings)
	}
}

// TestInstallJustPublished: an image that catalogd published after the
// mirror's last sync installs at once.
func TestInstallJustPublished(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	if _, err := findImages(ctx, e.p, FindOptions{Name: "NanoServer"}); err != nil {
		t.Fatal(err)
	}
	// NanoServer's layers under a new name, published now.
	nano := e.cat.item("nanoserver:10.0.14393.0")
	rec, ra, err := e.cat.reg.GetManifest(ctx, "nanoserver", nano.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(io.NewSectionReader(ra, 0, rec.Size))
	ra.Close()
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	m.Annotations[find.AnnotationTitle], m.Annotations[find.AnnotationVersion] = "FreshServer", "1.0.0.0"
	body, _ = json.Marshal(m)
	if _, err := e.cat.reg.PutManifest(ctx, "nanoserver", "1.0.0.0", rec.MediaType, body); err != nil {
		t.Fatal(err)
	}
	jb := e.install(api.InstallRequest{Name: "FreshServer"})
	if jb.State != api.JobSucceeded || jb.Result == nil || jb.Result.Name != "FreshServer" {
		t.Fatalf("install of an image published a moment ago: %s %s %+v", jb.State, jb.Message, jb.Result)
	}
}

// TestMirrorOutlivesTheSource: after a restart, the mirror answers from
// the database while its source is down, and says it is stale.
func TestMirrorOutlivesTheSource(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	before, err := findImages(ctx, e.p, FindOptions{})
	if err != nil || len(before) != 18 {
		t.Fatalf("Find: %d entries, %v", len(before), err)
	}
	if err := e.p.Close(); err != nil {
		t.Fatal(err)
	}
	e.cat.srv.Close()
	time.Sleep(feedFreshness + 100*time.Millisecond) // the mirror is no longer fresh
	e.p = e.open()
	res, err := e.p.Find(ctx, FindOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 18 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "source catalog: the index is stale") {
		t.Fatalf("Find with the source down: %d entries, warnings %q", len(res.Images), res.Warnings)
	}
}

// TestRefreshSource: a refresh syncs now and reports the state; an
// unknown source is NotFound; a removed source's mirror is gone.
func TestRefreshSource(t *testing.T) {
	e := newEnv(t, testBaseLayerSize, withDownSources)
	ctx := context.Background()
	src, err := e.p.RefreshSource(ctx, "catalog")
	if err != nil {
		t.Fatal(err)
	}
	st := src.Status
	if st == nil || !st.Complete || st.Mode != mirror.ModeFeed || st.Entries != 20 || st.LastSync == nil || st.LastError != "" || src.Password != "" {
		t.Fatalf("refresh: %+v %+v", src, st)
	}
	if _, err := e.p.RefreshSource(ctx, "nope"); !errdefs.IsNotFound(err) {
		t.Fatalf("refresh of an unknown source: %v", err)
	}
	if _, err := e.p.AddSource(ctx, api.Source{Name: "down1", Location: "http://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	src, err = e.p.RefreshSource(ctx, "down1")
	if err != nil || src.Status == nil || src.Status.Complete || !strings.Contains(src.Status.LastError, "connection refused") {
		t.Fatalf("refresh of a source down: %+v, %v", src.Status, err)
	}
	if err := e.p.RemoveSource(ctx, "catalog"); err != nil {
		t.Fatal(err)
	}
	if _, n, err := mirror.New(e.p.db, "catalog").State(ctx); err != nil || n != 0 {
		t.Fatalf("the mirror of a removed source: %d entries, %v", n, err)
	}
}

// TestFindReadsTheMirror: a Find reads the mirror, not the whole catalog:
// with the mirror fresh, no request reaches the source.
func TestFindReadsTheMirror(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	if _, err := e.p.RefreshSource(ctx, "catalog"); err != nil {
		t.Fatal(err)
	}
	e.cat.tap.mu.Lock()
	e.cat.tap.paths = map[string]int{}
	e.cat.tap.mu.Unlock()
	for range 5 {
		if _, err := findImages(ctx, e.p, FindOptions{Name: "NanoServer"}); err != nil {
			t.Fatal(err)
		}
	}
	e.cat.tap.mu.Lock()
	defer e.cat.tap.mu.Unlock()
	for p, n := range e.cat.tap.paths {
		if p == "/v2/_find" || p == "/v2/_catalog" || strings.HasSuffix(p, "/tags/list") {
			t.Errorf("%d requests to %s", n, p)
		}
	}
	// At most a catch-up of the feed a Find, which finds nothing new.
	if n := e.cat.tap.paths["/v2/_find/changes"]; n > 5 {
		t.Errorf("%d requests to the feed for 5 finds", n)
	}
}
