package source

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

func entryID(e api.FindEntry) string { return e.Repository + ":" + e.Version }

// normalized makes entries comparable with reflect.DeepEqual: the times in
// UTC.
func normalized(es []api.FindEntry) []api.FindEntry {
	out := cloneEntries(es)
	for i := range out {
		out[i].Created = out[i].Created.UTC()
	}
	return out
}

func TestCatalogFindExtension(t *testing.T) {
	env := newCatalogEnv(t)
	log := logRequests(env.handler)
	c := newTestClient(t, serve(t, log).URL)

	entries, err := c.Catalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
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
	if n := log.count("/v2/_find"); n != 1 {
		t.Errorf("%d requests to /v2/_find, want 1", n)
	}
	if n := log.count("/v2/_catalog"); n != 0 {
		t.Errorf("%d requests to /v2/_catalog, want none", n)
	}
}

func TestCatalogFallback(t *testing.T) {
	env := newCatalogEnv(t)
	want, err := newTestClient(t, serve(t, env.handler).URL).Catalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	log := logRequests(withoutFind(env.handler))
	c := newTestClient(t, serve(t, log).URL)
	c.pageSize = 2 // several pages of repositories, and of nanoserver's three tags
	got, err := c.Catalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
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
		t.Fatal("the fallback's entries differ from the find extension's")
	}
	if n := log.count("/v2/_find"); n != 1 {
		t.Errorf("%d requests to /v2/_find, want 1", n)
	}
	// 18 repositories in pages of 2.
	if n := log.count("/v2/_catalog"); n != 9 {
		t.Errorf("%d requests to /v2/_catalog, want 9 pages", n)
	}
	if n := log.count("/v2/nanoserver/tags/list"); n != 2 {
		t.Errorf("%d requests to nanoserver's tags/list, want 2 pages", n)
	}
}

func TestCatalogFallbackSkipsUnreadableManifests(t *testing.T) {
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
	entries, err := c.Catalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 19 {
		t.Fatalf("%d entries, want 19", len(entries))
	}
	for _, e := range entries {
		if e.Repository == "microsoft/sqlite" {
			t.Errorf("entry %s of an unreadable manifest", entryID(e))
		}
	}
}

func TestCatalogFallbackFails(t *testing.T) {
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
			_, err := newTestClient(t, serve(t, h).URL).Catalog(context.Background())
			if !errors.Is(err, tc.class) {
				t.Fatalf("error %v, want class %v", err, tc.class)
			}
			if !strings.Contains(err.Error(), "source "+testSourceName) {
				t.Errorf("error %q does not name the source", err)
			}
		})
	}
}

func TestCatalogFindErrorIsNotAFallback(t *testing.T) {
	log := logRequests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	_, err := newTestClient(t, serve(t, log).URL).Catalog(context.Background())
	if !errdefs.IsUnavailable(err) {
		t.Fatalf("error %v, want Unavailable", err)
	}
	if n := log.count("/v2/_catalog"); n != 0 {
		t.Errorf("%d requests to /v2/_catalog after a 503 from /v2/_find, want none", n)
	}
}

func TestCatalogCache(t *testing.T) {
	env := newCatalogEnv(t)
	for _, tc := range []struct {
		name     string
		ttl      time.Duration
		requests int
	}{
		{name: "cached", ttl: time.Hour, requests: 1},
		{name: "cache disabled", ttl: 0, requests: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := logRequests(env.handler)
			c := newTestClient(t, serve(t, log).URL, WithCatalogTTL(tc.ttl))
			first, err := c.Catalog(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// The caller owns its entries: changing them changes no
			// later answer.
			first[0].Name = "changed"
			for i := range first {
				if first[i].Parent != nil {
					first[i].Parent.Name = "changed"
				}
			}
			for range 2 {
				again, err := c.Catalog(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range again {
					if e.Name == "changed" || (e.Parent != nil && e.Parent.Name == "changed") {
						t.Fatalf("a caller's change shows in a later answer: %+v", e)
					}
				}
			}
			if n := log.count("/v2/_find"); n != tc.requests {
				t.Errorf("%d requests to /v2/_find, want %d", n, tc.requests)
			}
		})
	}
}

func TestCatalogContext(t *testing.T) {
	env := newCatalogEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, h := range []http.Handler{env.handler, withoutFind(env.handler)} {
		_, err := newTestClient(t, serve(t, h).URL, WithCatalogTTL(time.Hour)).Catalog(ctx)
		if !errors.Is(err, context.Canceled) || errdefs.IsUnavailable(err) {
			t.Errorf("error %v, want context.Canceled only", err)
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

func TestListRefusesForeignLinks(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", `<http://elsewhere.invalid/v2/_catalog?last=a>; rel="next"`)
		fmt.Fprint(w, `{"repositories":["a"]}`)
	})
	c := newTestClient(t, serve(t, h).URL)
	_, _, err := c.list(context.Background(), c.endpoint("/v2/_catalog", nil), catalogScope, 100)
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "elsewhere.invalid") {
		t.Fatalf("error %v, want Unavailable naming the foreign link", err)
	}
}

func TestListBounds(t *testing.T) {
	// A server whose Link always leads to a new page.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last := r.URL.Query().Get("last")
		next := last + "a"
		w.Header().Set("Link", fmt.Sprintf(`</v2/_catalog?n=2&last=%s>; rel="next"`, next))
		fmt.Fprintf(w, `{"repositories":[%q,%q]}`, next+"1", next+"2")
	})
	c := newTestClient(t, serve(t, h).URL)
	items, truncated, err := c.list(context.Background(), c.endpoint("/v2/_catalog", nil), catalogScope, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 7 || !truncated {
		t.Fatalf("%d items, truncated %v; want 7, true", len(items), truncated)
	}
}

// TestCatalogFallbackSkipsArtifacts: a crawl lists images only, as
// catalogd's index does: an oras artifact and a cosign signature tag are
// no entries.
func TestCatalogFallbackSkipsArtifacts(t *testing.T) {
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

	entries, err := newTestClient(t, serve(t, withoutFind(env.handler)).URL).Catalog(ctx)
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
