package catalog

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/publish"
)

// seededEnv is a server over a catalog seeded like `catalogd seed`, with
// small layers.
func seededEnv(t *testing.T) *testEnv {
	t.Helper()
	e := newTestEnv(t)
	rep, err := publish.Seed(context.Background(), e.reg, publish.SeedOptions{BaseLayerSize: 2048, AppLayerSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Items) != 20 {
		t.Fatalf("seed published %d images, want 20", len(rep.Items))
	}
	return e
}

func findIDs(fr api.FindResponse) []string {
	out := []string{}
	for _, e := range fr.Images {
		out = append(out, e.Name+"@"+e.Version)
	}
	return out
}

func TestFind(t *testing.T) {
	e := seededEnv(t)
	apps := []string{"aspnet", "django", "dotnet35", "golang", "httpd", "iis", "mongodb", "mysql",
		"nginx", "node", "php", "python", "rails", "redis", "ruby", "sqlite"}

	for _, tc := range []struct {
		name  string
		query url.Values
		want  []string // Name@Version, in order; nil: only check count
		count int
	}{
		{
			name:  "name with a wildcard, latest version",
			query: url.Values{"name": {"nano*"}},
			want:  []string{"NanoServer@10.0.14393.0"},
		},
		{
			name:  "name is case-insensitive",
			query: url.Values{"name": {"NANOSERVER"}, "allVersions": {"true"}},
			want:  []string{"NanoServer@10.0.10586.0", "NanoServer@10.0.14393.0"},
		},
		{
			name:  "minimumVersion",
			query: url.Values{"minimumVersion": {"10.0.14393.0"}},
			want:  []string{"NanoServer@10.0.14393.0", "WindowsServerCore@10.0.14393.0"},
		},
		{
			name:  "maximumVersion bound is inclusive",
			query: url.Values{"name": {"*server*"}, "maximumVersion": {"10.0.10586.0"}},
			want:  []string{"NanoServer@10.0.10586.0", "WindowsServerCore@10.0.10586.0"},
		},
		{
			name:  "allVersions",
			query: url.Values{"allVersions": {"true"}},
			count: 4 + len(apps),
		},
		{
			name:  "requiredVersion",
			query: url.Values{"name": {"WindowsServerCore"}, "requiredVersion": {"10.0.10586"}},
			want:  []string{"WindowsServerCore@10.0.10586.0"},
		},
		{
			name:  "no option: the latest of each name",
			query: url.Values{},
			count: 2 + len(apps),
		},
		{
			name:  "a wildcard that matches nothing is an empty list",
			query: url.Values{"name": {"zz*"}},
			want:  []string{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v2/_find?"+tc.query.Encode(), nil).
				wantStatus(t, http.StatusOK).wantHeader(t, "Content-Type", "application/json")
			var fr api.FindResponse
			if err := json.Unmarshal(r.body, &fr); err != nil {
				t.Fatal(err)
			}
			got := findIDs(fr)
			if tc.want != nil && !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if tc.want == nil && len(got) != tc.count {
				t.Fatalf("got %d images %v, want %d", len(got), got, tc.count)
			}
		})
	}

	t.Run("entries carry the image metadata", func(t *testing.T) {
		var fr api.FindResponse
		r := e.do(http.MethodGet, "/v2/_find?name=microsoft/iis", nil).wantStatus(t, http.StatusOK)
		if err := json.Unmarshal(r.body, &fr); err != nil || len(fr.Images) != 1 {
			t.Fatalf("%s: %v", r.body, err)
		}
		iis := fr.Images[0]
		if iis.IsOSImage || iis.Parent == nil || iis.Parent.Name != "WindowsServerCore" || iis.Publisher != "CN=Microsoft" ||
			iis.Description == "" || iis.Size <= 0 || iis.Created.IsZero() || !strings.HasPrefix(iis.Digest, "sha256:") {
			t.Fatalf("iis entry %+v", iis)
		}
		// The digest is the manifest's: the OCI API serves it.
		e.do(http.MethodHead, "/v2/microsoft/iis/manifests/"+iis.Digest, nil).wantStatus(t, http.StatusOK)
	})

	for _, tc := range []struct {
		name    string
		query   url.Values
		status  int
		code    string
		message string // exact, when set
		id      string
	}{
		{
			name:   "requiredVersion that does not exist",
			query:  url.Values{"name": {"NanoServer"}, "requiredVersion": {"10.0.99999.0"}},
			status: http.StatusNotFound, code: CodeManifestUnknown, id: "NoMatchFoundForCriteria",
			message: "No match was found for the specified search criteria and package name 'NanoServer'." +
				" RequiredVersion '10.0.99999.0' was not found.",
		},
		{
			name:   "a name that does not exist",
			query:  url.Values{"name": {"NoSuchImage"}},
			status: http.StatusNotFound, code: CodeNameUnknown, id: "NoMatchFoundForCriteria",
		},
		{
			name:   "requiredVersion with minimumVersion",
			query:  url.Values{"requiredVersion": {"10.0.14393.0"}, "minimumVersion": {"10.0.10586.0"}},
			status: http.StatusBadRequest, code: CodeFindInvalid, id: "VersionRangeAndRequiredVersionCannotBeSpecifiedTogether",
			message: "You cannot use the parameters RequiredVersion and either MinimumVersion or MaximumVersion in the same command.",
		},
		{
			name:   "allVersions with requiredVersion",
			query:  url.Values{"requiredVersion": {"10.0.14393.0"}, "allVersions": {"true"}},
			status: http.StatusBadRequest, code: CodeFindInvalid, id: "AllVersionsCannotBeUsedWithOtherVersionParameters",
		},
		{
			name:   "minimum above maximum",
			query:  url.Values{"minimumVersion": {"2.0"}, "maximumVersion": {"1.0"}},
			status: http.StatusBadRequest, code: CodeFindInvalid, id: "MinimumVersionMustBeLessThanMaximumVersion",
		},
		{
			name:   "a version that does not parse",
			query:  url.Values{"minimumVersion": {"ten"}},
			status: http.StatusBadRequest, code: CodeFindInvalid, id: "InvalidVersion",
		},
		{
			name:   "allVersions that is not a boolean",
			query:  url.Values{"allVersions": {"maybe"}},
			status: http.StatusBadRequest, code: CodeFindInvalid,
		},
		{
			name:   "an unknown parameter",
			query:  url.Values{"requiredversion": {"1.0"}},
			status: http.StatusBadRequest, code: CodeFindInvalid,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v2/_find?"+tc.query.Encode(), nil)
			ent := r.wantError(t, tc.status, tc.code)
			if tc.message != "" && ent.Message != tc.message {
				t.Fatalf("message %q,\nwant    %q", ent.Message, tc.message)
			}
			if tc.id != "" {
				var eb struct {
					Errors []struct {
						Detail findDetail `json:"detail"`
					} `json:"errors"`
				}
				if err := json.Unmarshal(r.body, &eb); err != nil || eb.Errors[0].Detail.ID != tc.id {
					t.Fatalf("detail of %s: %v, want id %s", r.body, err, tc.id)
				}
			}
		})
	}
}

func TestFindEmptyCatalog(t *testing.T) {
	e := newTestEnv(t)
	r := e.do(http.MethodGet, "/v2/_find", nil).wantStatus(t, http.StatusOK)
	if string(r.body) != `{"images":[]}` {
		t.Fatalf("empty catalog: %s", r.body)
	}
	h := e.do(http.MethodHead, "/v2/_find", nil).wantStatus(t, http.StatusOK)
	if len(h.body) != 0 {
		t.Fatal("HEAD with a body")
	}
}

// TestFindListingPages: the listing with n pages by names, with a Link
// to the next page that keeps the other parameters; the pages together
// are the whole listing.
func TestFindListingPages(t *testing.T) {
	e := seededEnv(t)
	whole := e.do(http.MethodGet, "/v2/_find?allVersions=true", nil).wantStatus(t, http.StatusOK)
	if whole.Header.Get("Link") != "" {
		t.Fatalf("the listing without n has a Link: %s", whole.Header.Get("Link"))
	}
	var want api.FindResponse
	if err := json.Unmarshal(whole.body, &want); err != nil {
		t.Fatal(err)
	}
	var got []string
	path := "/v2/_find?allVersions=true&n=3"
	pages := 0
	for ; path != "" && pages < 100; pages++ {
		r := e.do(http.MethodGet, path, nil).wantStatus(t, http.StatusOK)
		var fr api.FindResponse
		if err := json.Unmarshal(r.body, &fr); err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, im := range fr.Images {
			names[strings.ToLower(im.Name)] = true
		}
		if len(names) > 3 {
			t.Fatalf("page %s holds %d names, want at most 3", path, len(names))
		}
		got = append(got, findIDs(fr)...)
		path = ""
		if link := r.Header.Get("Link"); link != "" {
			if !strings.Contains(link, "allVersions=true") || !strings.HasSuffix(link, `>; rel="next"`) {
				t.Fatalf("Link %q", link)
			}
			path = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
		}
	}
	// 18 names: NanoServer, WindowsServerCore and 16 applications.
	if pages != 6 {
		t.Fatalf("%d pages of 3 names, want 6", pages)
	}
	if !slices.Equal(got, findIDs(want)) {
		t.Fatalf("pages %v\nwhole %v", got, findIDs(want))
	}
	e.do(http.MethodGet, "/v2/_find?name=nanoserver&n=3", nil).wantError(t, http.StatusBadRequest, CodeFindInvalid)
	e.do(http.MethodGet, "/v2/_find?n=x", nil).wantError(t, http.StatusBadRequest, CodePaginationNumberInvalid)
}

// TestFindETag: an answer's ETag gives a 304 until the index changes.
func TestFindETag(t *testing.T) {
	e := seededEnv(t)
	r := e.do(http.MethodGet, "/v2/_find?name=nanoserver", nil).wantStatus(t, http.StatusOK)
	tag := r.Header.Get("ETag")
	if tag == "" || !strings.HasPrefix(tag, `"`) {
		t.Fatalf("ETag %q", tag)
	}
	nm := e.do(http.MethodGet, "/v2/_find?name=nanoserver", nil, withHeader("If-None-Match", tag)).
		wantStatus(t, http.StatusNotModified)
	if len(nm.body) != 0 || nm.Header.Get("ETag") != tag {
		t.Fatalf("304: body %q, ETag %q", nm.body, nm.Header.Get("ETag"))
	}
	e.do(http.MethodGet, "/v2/_find?name=nanoserver", nil, withHeader("If-None-Match", `"other", W/`+tag)).
		wantStatus(t, http.StatusNotModified)
	e.push("tools", "1.0", newImage(t, "tools layer", nil, nil)).wantStatus(t, http.StatusCreated)
	again := e.do(http.MethodGet, "/v2/_find?name=nanoserver", nil, withHeader("If-None-Match", tag)).
		wantStatus(t, http.StatusOK)
	if again.Header.Get("ETag") == tag {
		t.Fatal("the ETag did not change with the index")
	}
}

// TestFindChanges: the feed lists every entry from 0, pages with a Link,
// then lists only what changed, and asks a client from another index to
// resync.
func TestFindChanges(t *testing.T) {
	e := seededEnv(t)
	read := func(path string) (api.FindChanges, response) {
		r := e.do(http.MethodGet, path, nil).wantStatus(t, http.StatusOK)
		var ch api.FindChanges
		if err := json.Unmarshal(r.body, &ch); err != nil {
			t.Fatal(err)
		}
		return ch, r
	}
	entries := map[string]bool{}
	path := "/v2/_find/changes?n=7"
	var last api.FindChanges
	for range 100 {
		ch, r := read(path)
		for _, c := range ch.Changes {
			if c.Removed || c.Entry == nil || c.Entry.Digest != c.Digest {
				t.Fatalf("change %+v", c)
			}
			entries[c.Repository+"@"+c.Digest] = true
		}
		last = ch
		link := r.Header.Get("Link")
		if !ch.More {
			if link != "" {
				t.Fatalf("the last page has a Link %q", link)
			}
			break
		}
		path = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
	}
	if len(entries) != 20 || last.Index == "" {
		t.Fatalf("the feed from 0 lists %d entries of index %q, want the 20 seeded", len(entries), last.Index)
	}
	ch, _ := read("/v2/_find/changes?since=" + strconv.FormatUint(last.Last, 10))
	if len(ch.Changes) != 0 || ch.More || ch.Resync || ch.Last != last.Last {
		t.Fatalf("caught up: %+v", ch)
	}
	e.do(http.MethodDelete, "/v2/nanoserver/manifests/10.0.10586.0", nil, withAuth()).wantStatus(t, http.StatusAccepted)
	ch, _ = read("/v2/_find/changes?since=" + strconv.FormatUint(last.Last, 10))
	if len(ch.Changes) != 1 || !ch.Changes[0].Removed || ch.Changes[0].Repository != "nanoserver" {
		t.Fatalf("after an untag: %+v", ch)
	}
	if ch, _ := read("/v2/_find/changes?since=99999999"); !ch.Resync {
		t.Fatalf("since beyond the feed: %+v, want a resync", ch)
	}
	e.do(http.MethodGet, "/v2/_find/changes?since=-1", nil).wantError(t, http.StatusBadRequest, CodeFindInvalid)
	e.do(http.MethodGet, "/v2/_find/changes?n=0", nil).wantError(t, http.StatusBadRequest, CodePaginationNumberInvalid)
	e.do(http.MethodGet, "/v2/_find/changes?name=x", nil).wantError(t, http.StatusBadRequest, CodeFindInvalid)
}

// TestFindListingStreams: the whole listing, read a few names at a time,
// is the same answer as in one piece, and a requiredVersion that no page
// has is the same 404.
func TestFindListingStreams(t *testing.T) {
	e := seededEnv(t)
	whole := map[string]string{}
	for _, q := range []string{"", "?allVersions=true", "?minimumVersion=10.0.14393.0", "?requiredVersion=1.0.0.0", "?requiredVersion=9.9"} {
		whole[q] = string(e.do(http.MethodGet, "/v2/_find"+q, nil).body)
	}
	defer func(n int) { listingPage = n }(listingPage)
	listingPage = 4
	for q, want := range whole {
		r := e.do(http.MethodGet, "/v2/_find"+q, nil)
		if string(r.body) != want {
			t.Errorf("listing %q in pages of 4 names:\n%s\nin one piece:\n%s", q, r.body, want)
		}
	}
	e.do(http.MethodGet, "/v2/_find?requiredVersion=9.9", nil).wantError(t, http.StatusNotFound, CodeManifestUnknown)
	var fr api.FindResponse
	if err := json.Unmarshal([]byte(whole["?allVersions=true"]), &fr); err != nil || len(fr.Images) != 20 {
		t.Fatalf("the listing of every version: %d images, %v", len(fr.Images), err)
	}
}
