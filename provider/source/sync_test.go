package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/provider/mirror"
)

func entryID(e api.FindEntry) string { return e.Repository + ":" + e.Version }

// normalized makes entries comparable with reflect.DeepEqual: the times in
// UTC.
func normalized(es []api.FindEntry) []api.FindEntry {
	out := slices.Clone(es)
	for i := range out {
		out[i].Created = out[i].Created.UTC()
	}
	return out
}

// mirrorState is the state of m and its number of entries.
func mirrorState(t *testing.T, m *mirror.Mirror) (mirror.State, int) {
	t.Helper()
	st, n, err := m.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st, n
}

// TestSyncFeed: a mirror of catalogd follows its change feed: every entry
// at the first sync, nothing more when nothing changed, then only what
// changed.
func TestSyncFeed(t *testing.T) {
	ctx := context.Background()
	env := newCatalogEnv(t)
	log := logRequests(env.handler)
	c := newTestClient(t, serve(t, log).URL)
	m := newTestMirror(t, testSourceName)
	if err := c.Sync(ctx, m); err != nil {
		t.Fatal(err)
	}
	entries := mirrorEntries(t, m)
	if len(entries) != 20 {
		t.Fatalf("%d entries, want 20", len(entries))
	}
	byID := map[string]api.FindEntry{}
	for _, e := range entries {
		if e.Source != testSourceName {
			t.Errorf("%s: Source %q, want %q", entryID(e), e.Source, testSourceName)
		}
		byID[entryID(e)] = e
	}
	nano := byID["nanoserver:10.0.10586.0"]
	if nano.Name != "NanoServer" || !nano.IsOSImage || nano.Publisher != "CN=Microsoft" ||
		nano.Digest != env.item(t, "nanoserver", "10.0.10586.0").Digest.String() || nano.OSVersion != "10.0.10586.0" {
		t.Errorf("NanoServer 10.0.10586.0: %+v", nano)
	}
	iis := byID["microsoft/iis:1.0.0.0"]
	wsc := env.item(t, "windowsservercore", "10.0.14393.0")
	if iis.IsOSImage || iis.Parent == nil || iis.Parent.Name != "WindowsServerCore" ||
		iis.Parent.Version != "10.0.14393.0" || iis.Parent.Digest != wsc.Digest.String() {
		t.Errorf("microsoft/iis: IsOSImage %v, parent %+v", iis.IsOSImage, iis.Parent)
	}
	st, n := mirrorState(t, m)
	if st.Mode != mirror.ModeFeed || !st.Complete || st.Index == "" || st.Seq == 0 || n != 20 || st.LastSync.IsZero() {
		t.Fatalf("state %+v, %d entries", st, n)
	}
	want, err := env.reg.Find(ctx, find.Options{AllVersions: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		want[i].Source = testSourceName
	}
	if g, w := normalized(entries), normalized(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("the mirror's entries differ from catalogd's:\n got %v\nwant %v", g, w)
	}
	if n := log.count("/v2/_find/changes"); n != 1 {
		t.Errorf("%d requests to the feed, want 1", n)
	}
	if n := log.count("/v2/_catalog"); n != 0 {
		t.Errorf("%d requests to /v2/_catalog, want none", n)
	}

	// Nothing changed: one request, nothing written.
	if err := c.Sync(ctx, m); err != nil {
		t.Fatal(err)
	}
	if again, _ := mirrorState(t, m); again.Seq != st.Seq || log.count("/v2/_find/changes") != 2 {
		t.Fatalf("a sync with nothing new: seq %d (was %d), %d requests", again.Seq, st.Seq, log.count("/v2/_find/changes"))
	}

	// An untag, and a retag of the same manifest under a new name.
	if err := env.reg.DeleteManifest(ctx, "nanoserver", "10.0.10586.0"); err != nil {
		t.Fatal(err)
	}
	if err := c.Lookup(ctx, m, ""); err != nil {
		t.Fatal(err)
	}
	entries = mirrorEntries(t, m)
	if len(entries) != 19 || slices.ContainsFunc(entries, func(e api.FindEntry) bool { return entryID(e) == "nanoserver:10.0.10586.0" }) {
		t.Fatalf("after an untag: %d entries", len(entries))
	}
}

// TestSyncFeedResyncs: a mirror that followed another index starts again.
func TestSyncFeedResyncs(t *testing.T) {
	ctx := context.Background()
	env := newCatalogEnv(t)
	c := newTestClient(t, serve(t, env.handler).URL)
	m := newTestMirror(t, testSourceName)
	if err := m.ApplyChanges(ctx, []api.FindChange{{Seq: 5, Repository: "gone", Digest: "sha256:" + strings.Repeat("1", 64),
		Entry: &api.FindEntry{Name: "Gone", Version: "1.0"}}}, mirror.State{Mode: mirror.ModeFeed, Index: "another", Seq: 5, Complete: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(ctx, m); err != nil {
		t.Fatal(err)
	}
	entries := mirrorEntries(t, m)
	if len(entries) != 20 || slices.ContainsFunc(entries, func(e api.FindEntry) bool { return e.Repository == "gone" }) {
		t.Fatalf("after a resync: %d entries: %v", len(entries), entries)
	}
}

// TestSyncCrawl: from a registry without the feed, a crawl gives the
// entries that the feed gives; a second pass asks HEAD for the tags it
// knows and reads no manifest again.
func TestSyncCrawl(t *testing.T) {
	ctx := context.Background()
	env := newCatalogEnv(t)
	want, err := syncedEntries(ctx, t, newTestClient(t, serve(t, env.handler).URL))
	if err != nil {
		t.Fatal(err)
	}

	log := logRequests(withoutFind(env.handler))
	c := newTestClient(t, serve(t, log).URL)
	c.pageSize = 2 // several pages of repositories, and of nanoserver's three tags
	m := newTestMirror(t, testSourceName)
	if err := c.Sync(ctx, m); err != nil {
		t.Fatal(err)
	}
	got := mirrorEntries(t, m)
	if len(got) != 20 {
		t.Fatalf("%d entries, want 20", len(got))
	}
	for i := range got {
		if got[i].OSVersion == "" || got[i].Publisher == "" || got[i].Source != testSourceName {
			t.Errorf("%s: os.version %q, publisher %q, source %q", entryID(got[i]), got[i].OSVersion, got[i].Publisher, got[i].Source)
		}
	}
	if g, w := normalized(got), normalized(want); !reflect.DeepEqual(g, w) {
		for i := range min(len(g), len(w)) {
			if !reflect.DeepEqual(g[i], w[i]) {
				t.Errorf("entry %d:\n got %+v parent %+v\nwant %+v parent %+v", i, g[i], g[i].Parent, w[i], w[i].Parent)
			}
		}
		t.Fatal("the crawl's entries differ from the feed's")
	}
	st, n := mirrorState(t, m)
	if st.Mode != mirror.ModeCrawl || !st.Complete || !st.PassDone || st.Listed != 18 || st.Crawled != 18 || n != 20 {
		t.Fatalf("state %+v, %d entries", st, n)
	}
	// 18 repositories in pages of 2.
	if n := log.count("/v2/_catalog"); n != 9 {
		t.Errorf("%d requests to /v2/_catalog, want 9 pages", n)
	}
	if n := log.count("/v2/nanoserver/tags/list"); n != 2 {
		t.Errorf("%d requests to nanoserver's tags/list, want 2 pages", n)
	}
	gets := log.countMethod(http.MethodGet, "/v2/nanoserver/manifests/")
	if gets != 3 {
		t.Errorf("%d manifest GETs in nanoserver, want one per tag", gets)
	}

	// The second pass: HEADs only, for the same entries.
	if err := c.Sync(ctx, m); err != nil {
		t.Fatal(err)
	}
	if g := log.countMethod(http.MethodGet, "/v2/nanoserver/manifests/"); g != gets {
		t.Errorf("the second pass read %d manifests of nanoserver again", g-gets)
	}
	if h := log.countMethod(http.MethodHead, "/v2/nanoserver/manifests/"); h != 3 {
		t.Errorf("the second pass sent %d HEADs to nanoserver, want 3", h)
	}
	if again := mirrorEntries(t, m); !reflect.DeepEqual(normalized(again), normalized(got)) {
		t.Fatal("the second pass changed the entries")
	}
	if st, _ := mirrorState(t, m); st.Pass != 2 || !st.PassDone {
		t.Fatalf("after the second pass: %+v", st)
	}
}

// TestSyncCrawlResumes: a crawl stopped half way goes on where it stopped,
// reading no repository twice.
func TestSyncCrawlResumes(t *testing.T) {
	env := newCatalogEnv(t)
	log := logRequests(withoutFind(env.handler))
	c := newTestClient(t, serve(t, log).URL)
	m := newTestMirror(t, testSourceName)

	ctx, cancel := context.WithCancel(context.Background())
	var lists atomic.Int32
	stopper := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/tags/list") && lists.Add(1) == 6 {
			cancel()
		}
		log.ServeHTTP(w, r)
	})
	c = newTestClient(t, serve(t, stopper).URL)
	if err := c.Sync(ctx, m); !errors.Is(err, context.Canceled) {
		t.Fatalf("a stopped sync: %v, want context.Canceled", err)
	}
	st, _ := mirrorState(t, m)
	if st.Complete || st.PassDone || st.Crawled == 0 || st.Crawled >= 18 || st.LastError != "" {
		t.Fatalf("a stopped pass: %+v", st)
	}
	before := log.countPrefix("/v2/")
	if err := c.Sync(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	st, n := mirrorState(t, m)
	if !st.Complete || st.Pass != 1 || st.Crawled != 18 || n != 20 {
		t.Fatalf("after the resumed pass: %+v, %d entries", st, n)
	}
	total := 0
	for _, item := range env.seed.Items {
		if c := log.count("/v2/" + item.Repository + "/tags/list"); c > 1 {
			total += c - 1
		}
	}
	// The repositories read before the stop are not read again (those
	// whose crawl the stop cut short may be).
	if total > crawlConcurrency {
		t.Errorf("%d tags/list requests repeated, want at most %d", total, crawlConcurrency)
	}
	if log.countPrefix("/v2/") == before {
		t.Fatal("the resumed sync sent nothing")
	}
}

// TestSyncCrawlETag: a tags/list with an ETag is asked If-None-Match,
// and a 304 reads nothing more of the repository.
func TestSyncCrawlETag(t *testing.T) {
	ctx := context.Background()
	env := newCatalogEnv(t)
	var notModified atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/tags/list") {
			tag := `"` + r.URL.Path + `"`
			if r.Header.Get("If-None-Match") == tag {
				notModified.Add(1)
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("ETag", tag)
		}
		withoutFind(env.handler).ServeHTTP(w, r)
	})
	log := logRequests(h)
	c := newTestClient(t, serve(t, log).URL)
	m := newTestMirror(t, testSourceName)
	for range 2 {
		if err := c.Sync(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if n := notModified.Load(); n != 18 {
		t.Errorf("%d answers 304, want one per repository", n)
	}
	if h := log.countMethod(http.MethodHead, "/v2/"); h != 0 {
		t.Errorf("%d HEADs after a 304, want none", h)
	}
	if _, n := mirrorState(t, m); n != 20 {
		t.Errorf("%d entries, want 20", n)
	}
}

// TestLookupCrawl: a repository pushed after the pass is read by a lookup
// at once; a name no registry has is no error.
func TestLookupCrawl(t *testing.T) {
	ctx := context.Background()
	env := newCatalogEnv(t)
	c := newTestClient(t, serve(t, withoutFind(env.handler)).URL)
	m := newTestMirror(t, testSourceName)
	if err := c.Sync(ctx, m); err != nil {
		t.Fatal(err)
	}
	pushImage(t, env, "tools/new", "1.0")
	if err := c.Lookup(ctx, m, "tools/new"); err != nil {
		t.Fatal(err)
	}
	es, err := m.Candidates(ctx, "tools/new")
	if err != nil || len(es) != 1 || es[0].Version != "1.0" {
		t.Fatalf("after a lookup: %v, %v", es, err)
	}
	if err := c.Lookup(ctx, m, "no/such"); err != nil {
		t.Fatalf("a lookup of a repository the registry does not have: %v", err)
	}
	// The next pass keeps it: _catalog lists it now.
	if err := c.Sync(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, n := mirrorState(t, m); n != 21 {
		t.Fatalf("%d entries after the next pass, want 21", n)
	}
}

// pushImage pushes a small image with no annotations to repo:tag.
func pushImage(t *testing.T, env *catalogEnv, repo, tag string) {
	t.Helper()
	pushImageConfig(t, env, repo, tag, `{"architecture":"amd64","os":"windows","created":"2026-01-02T03:04:05Z","rootfs":{"type":"layers","diff_ids":[]}}`)
}

// pushImageConfig pushes a layerless image with no annotations and the
// image config config to repo:tag.
func pushImageConfig(t *testing.T, env *catalogEnv, repo, tag, config string) {
	t.Helper()
	ctx := context.Background()
	blob := func(mt string, b []byte) ocispec.Descriptor {
		info, err := env.reg.PutBlob(ctx, repo, "", int64(len(b)), bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return ocispec.Descriptor{MediaType: mt, Digest: info.Digest, Size: info.Size}
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: blob(ocispec.MediaTypeImageConfig, []byte(config)),
		Layers: []ocispec.Descriptor{},
	}
	b, _ := json.Marshal(m)
	if _, err := env.reg.PutManifest(ctx, repo, tag, ocispec.MediaTypeImageManifest, b); err != nil {
		t.Fatal(err)
	}
}

func TestSyncCrawlSkipsUnreadableManifests(t *testing.T) {
	env := newCatalogEnv(t)
	broken := func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/v2/microsoft/sqlite/manifests/") }
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken(r) {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		withoutFind(env.handler).ServeHTTP(w, r)
	})
	c := newTestClient(t, serve(t, h).URL)
	m := newTestMirror(t, testSourceName)
	if err := c.Sync(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	entries := mirrorEntries(t, m)
	if len(entries) != 19 {
		t.Fatalf("%d entries, want 19", len(entries))
	}
	for _, e := range entries {
		if e.Repository == "microsoft/sqlite" {
			t.Errorf("entry %s of an unreadable manifest", entryID(e))
		}
	}
	// The failure is in the state, not silent.
	if st, _ := mirrorState(t, m); !st.Complete || st.Failed != 1 || !strings.Contains(st.LastError, "1 of 18 repositories") {
		t.Fatalf("state %+v", st)
	}
}

func TestSyncCrawlFails(t *testing.T) {
	env := newCatalogEnv(t)
	for _, tc := range []struct {
		name   string
		broken func(r *http.Request) bool
		status int
		class  error
	}{
		{
			name:   "every manifest unreadable",
			broken: isManifestRequest,
			status: http.StatusInternalServerError,
			class:  errdefs.ErrUnavailable,
		},
		{
			name:   "every tag list unreadable",
			broken: func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/tags/list") },
			status: http.StatusForbidden,
			class:  errdefs.ErrPermissionDenied,
		},
		{
			name:   "catalog listing refused",
			broken: func(r *http.Request) bool { return r.URL.Path == "/v2/_catalog" },
			status: http.StatusUnauthorized,
			class:  errdefs.ErrUnauthenticated,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.broken(r) {
					w.WriteHeader(tc.status)
					return
				}
				withoutFind(env.handler).ServeHTTP(w, r)
			})
			m := newTestMirror(t, testSourceName)
			err := newTestClient(t, serve(t, h).URL).Sync(context.Background(), m)
			if !errors.Is(err, tc.class) {
				t.Fatalf("error %v, want class %v", err, tc.class)
			}
			if !strings.Contains(err.Error(), "source "+testSourceName) {
				t.Errorf("error %q does not name the source", err)
			}
			if st, _ := mirrorState(t, m); st.Complete || st.LastError == "" || st.LastErrorAt.IsZero() {
				t.Errorf("state after a failed sync: %+v", st)
			}
		})
	}
}

func TestSyncFeedErrorIsNotAFallback(t *testing.T) {
	log := logRequests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	err := newTestClient(t, serve(t, log).URL).Sync(context.Background(), newTestMirror(t, testSourceName))
	if !errdefs.IsUnavailable(err) {
		t.Fatalf("error %v, want Unavailable", err)
	}
	if n := log.count("/v2/_catalog"); n != 0 {
		t.Errorf("%d requests to /v2/_catalog after a 503 from the feed, want none", n)
	}
}

func TestSyncContext(t *testing.T) {
	env := newCatalogEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, h := range []http.Handler{env.handler, withoutFind(env.handler)} {
		m := newTestMirror(t, testSourceName)
		err := newTestClient(t, serve(t, h).URL).Sync(ctx, m)
		if !errors.Is(err, context.Canceled) || errdefs.IsUnavailable(err) {
			t.Errorf("error %v, want context.Canceled only", err)
		}
		if st, _ := mirrorState(t, m); st.LastError != "" {
			t.Errorf("a canceled sync is recorded as failed: %+v", st)
		}
	}
}

func TestNextLink(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		want   string
	}{
		{name: "none"},
		{name: "catalogd's", values: []string{`</v2/_catalog?n=2&last=b>; rel="next"`}, want: "/v2/_catalog?n=2&last=b"},
		{name: "unquoted rel", values: []string{`</v2/x/tags/list?last=1>; rel=next`}, want: "/v2/x/tags/list?last=1"},
		{name: "among others", values: []string{`<https://r/v2/_catalog?last=a>; rel="prev", <https://r/v2/_catalog?last=c>; type="x"; rel="next"`},
			want: "https://r/v2/_catalog?last=c"},
		{name: "several rels", values: []string{`</p2>; rel="last next"`}, want: "/p2"},
		{name: "only prev", values: []string{`</p0>; rel="prev"`}},
		{name: "second header", values: []string{`</p0>; rel="prev"`, `</p2>; rel="next"`}, want: "/p2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextLink(tc.values); got != tc.want {
				t.Errorf("nextLink(%q) = %q, want %q", tc.values, got, tc.want)
			}
		})
	}
}

func TestTagListRefusesForeignLinks(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<http://elsewhere.invalid/v2/a/tags/list?last=a>; rel="next"`)
		fmt.Fprint(w, `{"tags":["a"]}`)
	})
	c := newTestClient(t, serve(t, h).URL)
	_, _, _, err := c.tagList(context.Background(), "a", "")
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "elsewhere.invalid") {
		t.Fatalf("error %v, want Unavailable naming the foreign link", err)
	}
}

// TestCatalogPagesMoveOn: a _catalog whose Link never moves on is an
// error, not a loop.
func TestCatalogPagesMoveOn(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/_catalog" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Link", `</v2/_catalog?n=2&last=a>; rel="next"`)
		fmt.Fprint(w, `{"repositories":["a"]}`)
	})
	err := newTestClient(t, serve(t, h).URL).Sync(context.Background(), newTestMirror(t, testSourceName))
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "does not move on") {
		t.Fatalf("error %v, want Unavailable saying the pages do not move on", err)
	}
}

// TestSyncCrawlSkipsArtifacts: a crawl lists images only, as catalogd's
// index does: an oras artifact and a cosign signature tag are no entries.
func TestSyncCrawlSkipsArtifacts(t *testing.T) {
	ctx := context.Background()
	env := newCatalogEnv(t)
	blob := func(repo, mt string, b []byte) ocispec.Descriptor {
		info, err := env.reg.PutBlob(ctx, repo, "", int64(len(b)), bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return ocispec.Descriptor{MediaType: mt, Digest: info.Digest, Size: info.Size}
	}
	put := func(repo, tag string, m ocispec.Manifest) {
		m.Versioned, m.MediaType = specs.Versioned{SchemaVersion: 2}, ocispec.MediaTypeImageManifest
		b, _ := json.Marshal(m)
		if _, err := env.reg.PutManifest(ctx, repo, tag, ocispec.MediaTypeImageManifest, b); err != nil {
			t.Fatal(err)
		}
	}
	put("tools/notes", "v1", ocispec.Manifest{ArtifactType: "application/vnd.example.notes",
		Config: blob("tools/notes", "application/vnd.oci.empty.v1+json", []byte("{}")),
		Layers: []ocispec.Descriptor{blob("tools/notes", "text/plain", []byte("hello"))}})
	put("nanoserver", "sha256-"+strings.Repeat("ab", 32)+".sig", ocispec.Manifest{
		Config: blob("nanoserver", ocispec.MediaTypeImageConfig, []byte(`{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]}}`)),
		Layers: []ocispec.Descriptor{blob("nanoserver", "application/vnd.dev.cosign.simplesigning.v1+json", []byte(`{"critical":{}}`))}})

	entries, err := syncedEntries(ctx, t, newTestClient(t, serve(t, withoutFind(env.handler)).URL))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 20 {
		t.Fatalf("%d entries, want the 20 images", len(entries))
	}
	for _, e := range entries {
		if e.Repository == "tools/notes" || strings.HasSuffix(e.Version, ".sig") {
			t.Errorf("an artifact is an entry: %s", entryID(e))
		}
	}
}

// TestSyncCrawlCreatedFromConfig: an image whose manifest has no created
// annotation gets the created time of its config.
func TestSyncCrawlCreatedFromConfig(t *testing.T) {
	ctx := context.Background()
	env := newCatalogEnv(t)
	pushImage(t, env, "tools/plain", "2.0")
	c := newTestClient(t, serve(t, withoutFind(env.handler)).URL)
	m := newTestMirror(t, testSourceName)
	if err := c.Sync(ctx, m); err != nil {
		t.Fatal(err)
	}
	es, err := m.Candidates(ctx, "tools/plain")
	if err != nil || len(es) != 1 {
		t.Fatalf("%v, %v", es, err)
	}
	if got := es[0].Created.UTC().Format("2006-01-02T15:04:05Z"); got != "2026-01-02T03:04:05Z" {
		t.Fatalf("created %s, want the config's 2026-01-02T03:04:05Z", got)
	}
}

// TestSyncCrawlOSVersionAsCatalogd: the crawl reads os.version from every
// image config that catalogd reads it from, whatever its created holds, so
// that the crawl's entry has the os.version of the feed's.
func TestSyncCrawlOSVersionAsCatalogd(t *testing.T) {
	const osVersion = "10.0.14393.0"
	for _, tc := range []struct {
		name, created string
	}{
		{"time", `"2026-01-02T03:04:05Z"`},
		{"not a time", `"yesterday"`},
		{"null", `null`},
		{"number", `1700000000`},
		{"object", `{"at":"2026-01-02T03:04:05Z"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			env := newCatalogEnv(t)
			pushImageConfig(t, env, "tools/plain", "2.0",
				`{"architecture":"amd64","os":"windows","os.version":"`+osVersion+`","created":`+tc.created+`,"rootfs":{"type":"layers","diff_ids":[]}}`)
			feed, err := syncedEntries(ctx, t, newTestClient(t, serve(t, env.handler).URL))
			if err != nil {
				t.Fatal(err)
			}
			crawl, err := syncedEntries(ctx, t, newTestClient(t, serve(t, withoutFind(env.handler)).URL))
			if err != nil {
				t.Fatal(err)
			}
			osVersionOf := func(es []api.FindEntry) string {
				for _, e := range es {
					if e.Repository == "tools/plain" {
						return e.OSVersion
					}
				}
				t.Fatal("no entry of tools/plain")
				return ""
			}
			if f, c := osVersionOf(feed), osVersionOf(crawl); f != osVersion || c != f {
				t.Fatalf("os.version: the feed gives %q, the crawl %q; want %q", f, c, osVersion)
			}
		})
	}
}
