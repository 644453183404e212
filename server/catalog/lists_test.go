package catalog

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var linkPattern = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// followPages reads a paginated list from path, following Link headers,
// and returns the items and the Link headers seen. At most 100 pages.
func followPages(t *testing.T, e *testEnv, path string, items func([]byte) []string) ([]string, []string) {
	t.Helper()
	var all, links []string
	for range 100 {
		r := e.do(http.MethodGet, path, nil).wantStatus(t, http.StatusOK).wantHeader(t, "Content-Type", "application/json")
		all = append(all, items(r.body)...)
		link := r.Header.Get("Link")
		if link == "" {
			return all, links
		}
		links = append(links, link)
		m := linkPattern.FindStringSubmatch(link)
		if m == nil {
			t.Fatalf("Link header %q", link)
		}
		path = m[1]
	}
	t.Fatal("more than 100 pages")
	return nil, nil
}

func TestTagsPagination(t *testing.T) {
	e := newTestEnv(t)
	tags := []string{"1.0.0.0", "10.0.10586.0", "10.0.14393.0", "2.0.0.0", "latest"}
	for i, tag := range tags {
		e.push("nanoserver", tag, newImage(t, fmt.Sprintf("layer %d", i), nil, nil))
	}
	decode := func(b []byte) []string {
		var tl tagList
		if err := json.Unmarshal(b, &tl); err != nil || tl.Name != "nanoserver" {
			t.Fatalf("tag list %s: %v", b, err)
		}
		return tl.Tags
	}

	all, links := followPages(t, e, "/v2/nanoserver/tags/list", decode)
	if !slices.Equal(all, tags) || len(links) != 0 {
		t.Fatalf("all tags %v (links %v), want %v", all, links, tags)
	}
	all, links = followPages(t, e, "/v2/nanoserver/tags/list?n=2", decode)
	if !slices.Equal(all, tags) {
		t.Fatalf("paged tags %v, want %v", all, tags)
	}
	wantLinks := []string{
		`</v2/nanoserver/tags/list?n=2&last=10.0.10586.0>; rel="next"`,
		`</v2/nanoserver/tags/list?n=2&last=2.0.0.0>; rel="next"`,
	}
	if !slices.Equal(links, wantLinks) {
		t.Fatalf("links %q, want %q", links, wantLinks)
	}
	// n equal to what remains: no Link, since nothing is left.
	r := e.do(http.MethodGet, "/v2/nanoserver/tags/list?n=5", nil).wantStatus(t, http.StatusOK).wantHeader(t, "Link", "")
	if got := decode(r.body); !slices.Equal(got, tags) {
		t.Fatalf("n=5: %v", got)
	}
	if got := decode(e.do(http.MethodGet, "/v2/nanoserver/tags/list?last=2.0.0.0", nil).body); !slices.Equal(got, []string{"latest"}) {
		t.Fatalf("last=2.0.0.0: %v", got)
	}
	if got := decode(e.do(http.MethodGet, "/v2/nanoserver/tags/list?n=0", nil).body); got == nil || len(got) != 0 {
		t.Fatalf("n=0: %#v, want an empty list", got)
	}
	for _, bad := range []string{"abc", "-1", "1.5", ""} {
		e.do(http.MethodGet, "/v2/nanoserver/tags/list?n="+bad, nil).wantError(t, http.StatusBadRequest, CodePaginationNumberInvalid)
	}
	e.do(http.MethodGet, "/v2/unknown/tags/list", nil).wantError(t, http.StatusNotFound, CodeNameUnknown)
}

func TestCatalogPagination(t *testing.T) {
	e := newTestEnv(t)
	repos := []string{"microsoft/iis", "microsoft/nginx", "nanoserver", "windowsservercore"}
	for i, repo := range repos {
		e.push(repo, "1.0.0.0", newImage(t, fmt.Sprintf("layer %d", i), nil, nil))
	}
	decode := func(b []byte) []string {
		var rl repositoryList
		if err := json.Unmarshal(b, &rl); err != nil {
			t.Fatalf("catalog %s: %v", b, err)
		}
		return rl.Repositories
	}
	all, links := followPages(t, e, "/v2/_catalog?n=3", decode)
	if !slices.Equal(all, repos) {
		t.Fatalf("catalog %v, want %v", all, repos)
	}
	if want := []string{`</v2/_catalog?n=3&last=nanoserver>; rel="next"`}; !slices.Equal(links, want) {
		t.Fatalf("links %q, want %q", links, want)
	}
	e.do(http.MethodGet, "/v2/_catalog?n=x", nil).wantError(t, http.StatusBadRequest, CodePaginationNumberInvalid)
	// A last that sorts between names.
	if got := decode(e.do(http.MethodGet, "/v2/_catalog?last=n", nil).body); !slices.Equal(got, repos[2:]) {
		t.Fatalf("last=n: %v", got)
	}
}

// TestReferrers pushes an image and an artifact whose subject it is, and
// lists the referrers, with and without an artifactType filter.
func TestReferrers(t *testing.T) {
	e := newTestEnv(t)
	subject := newImage(t, "the subject's layer", nil, nil)
	e.push("repo", "1.0.0.0", subject)
	subjDesc := &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: subject.digest, Size: int64(len(subject.manifest))}

	sig := newImage(t, "a signature", subjDesc, map[string]string{"kind": "signature"})
	e.push("repo", sig.digest.Encoded()[:20], sig).wantHeader(t, "OCI-Subject", subject.digest.String())

	decode := func(r response) ocispec.Index {
		t.Helper()
		r.wantStatus(t, http.StatusOK).wantHeader(t, "Content-Type", ocispec.MediaTypeImageIndex)
		var idx ocispec.Index
		if err := json.Unmarshal(r.body, &idx); err != nil {
			t.Fatal(err)
		}
		if idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex || idx.Manifests == nil {
			t.Fatalf("not an OCI index with a manifests list: %s", r.body)
		}
		return idx
	}

	idx := decode(e.do(http.MethodGet, "/v2/repo/referrers/"+subject.digest.String(), nil))
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sig.digest ||
		idx.Manifests[0].ArtifactType != ocispec.MediaTypeImageConfig || idx.Manifests[0].Annotations["kind"] != "signature" {
		t.Fatalf("referrers %+v", idx.Manifests)
	}

	r := e.do(http.MethodGet, "/v2/repo/referrers/"+subject.digest.String()+"?artifactType="+url.QueryEscape(ocispec.MediaTypeImageConfig), nil).
		wantHeader(t, "OCI-Filters-Applied", "artifactType")
	if idx := decode(r); len(idx.Manifests) != 1 {
		t.Fatalf("filtered referrers %+v", idx.Manifests)
	}
	r = e.do(http.MethodGet, "/v2/repo/referrers/"+subject.digest.String()+"?artifactType=application/vnd.example.other", nil).
		wantHeader(t, "OCI-Filters-Applied", "artifactType")
	if idx := decode(r); len(idx.Manifests) != 0 {
		t.Fatalf("filter that matches nothing: %+v", idx.Manifests)
	}
	// No referrers, or no repository: an empty index, not 404.
	if idx := decode(e.do(http.MethodGet, "/v2/repo/referrers/"+sig.digest.String(), nil)); len(idx.Manifests) != 0 {
		t.Fatalf("referrers of the signature: %+v", idx.Manifests)
	}
	if idx := decode(e.do(http.MethodGet, "/v2/no/such/repo/referrers/"+sig.digest.String(), nil)); len(idx.Manifests) != 0 {
		t.Fatalf("referrers in an unknown repository: %+v", idx.Manifests)
	}
	e.do(http.MethodGet, "/v2/repo/referrers/sha256:short", nil).wantError(t, http.StatusBadRequest, CodeDigestInvalid)
}
