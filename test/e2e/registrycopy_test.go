package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	godigest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/find"
)

// manifestAccept is every manifest media type a registry may hold.
var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
	find.MediaTypeDockerManifest, find.MediaTypeDockerManifestList,
}, ", ")

// getJSONAt decodes the JSON answer of a GET of base+path (base is
// http://host:port) into out; the answer must be 200.
func getJSONAt(t *testing.T, base, path string, out any) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s%s: %d %s", base, path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s%s: %v\n%s", base, path, err, b)
	}
}

// repositoriesAt lists the repositories of the registry at base from its
// _catalog, in one page of at most 1000.
func repositoriesAt(t *testing.T, base string) []string {
	t.Helper()
	var out struct {
		Repositories []string `json:"repositories"`
	}
	getJSONAt(t, base, "/v2/_catalog?n=1000", &out)
	return out.Repositories
}

// tagsAt lists, sorted, the tags of repo at base, in one page of at most
// 1000.
func tagsAt(t *testing.T, base, repo string) []string {
	t.Helper()
	var out struct {
		Tags []string `json:"tags"`
	}
	getJSONAt(t, base, "/v2/"+repo+"/tags/list?n=1000", &out)
	slices.Sort(out.Tags)
	return out.Tags
}

// manifestAt reads the manifest repo:ref at base: its bytes and the
// Docker-Content-Digest that the registry gives, which must be the digest
// of the bytes.
func manifestAt(t *testing.T, base, repo, ref string) ([]byte, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s %s:%s: %d %s", base, repo, ref, resp.StatusCode, b)
	}
	d := resp.Header.Get("Docker-Content-Digest")
	if got := godigest.FromBytes(b).String(); got != d {
		t.Fatalf("%s %s:%s: Docker-Content-Digest %q, the bytes have %s", base, repo, ref, d, got)
	}
	return b, d
}

// waitSynced waits up to 30 s for p's one source to have ended a whole
// sync without error, in mode (feed or crawl), and returns its status.
func waitSynced(t *testing.T, p *providerd, mode string) api.SourceStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := crawlStatus(t, p)
		if st.Complete && !st.Syncing && st.LastError == "" {
			if st.Mode != mode {
				t.Fatalf("the source synced by %q, want %q: %+v", st.Mode, mode, st)
			}
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the source has not synced within 30 s: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// findJSON is `cimage --output json ARGS…`, decoded field by field, so
// that a comparison sees every field that cimage prints, including ones
// this test does not know of.
func findJSON(t *testing.T, p *providerd, args ...string) map[string]any {
	t.Helper()
	out := mustCimage(t, p, append([]string{"--output", "json"}, args...)...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("cimage %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return m
}

// entryKey names a find entry of a decoded answer in a failure message.
func entryKey(e any) string {
	m, _ := e.(map[string]any)
	return fmt.Sprintf("%v@%v (%v)", m["name"], m["version"], m["repository"])
}

// diffFind lists the differences between two decoded find answers: the
// entries, compared in order (find sorts them) and field by field, and
// the other members of the answer (warnings).
func diffFind(feed, crawl map[string]any) []string {
	var diffs []string
	fe, _ := feed["images"].([]any)
	ce, _ := crawl["images"].([]any)
	if len(fe) != len(ce) {
		var fn, cn []string
		for _, e := range fe {
			fn = append(fn, entryKey(e))
		}
		for _, e := range ce {
			cn = append(cn, entryKey(e))
		}
		return []string{fmt.Sprintf("%d entries from the feed, %d from the crawl:\n  feed:  %v\n  crawl: %v", len(fe), len(ce), fn, cn)}
	}
	for i := range fe {
		f, _ := fe[i].(map[string]any)
		c, _ := ce[i].(map[string]any)
		for _, k := range unionKeys(f, c) {
			if !reflect.DeepEqual(f[k], c[k]) {
				diffs = append(diffs, fmt.Sprintf("entry %d %s: %s: feed %s, crawl %s", i, entryKey(f), k, jsonOf(f[k]), jsonOf(c[k])))
			}
		}
	}
	for _, k := range unionKeys(feed, crawl) {
		if k != "images" && !reflect.DeepEqual(feed[k], crawl[k]) {
			diffs = append(diffs, fmt.Sprintf("%s: feed %s, crawl %s", k, jsonOf(feed[k]), jsonOf(crawl[k])))
		}
	}
	return diffs
}

func unionKeys(a, b map[string]any) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func jsonOf(v any) string {
	if v == nil {
		return "(absent)"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestRegistryCopyKeepsFind copies every repository of a seeded catalogd,
// with every tag (cosign's signature tags included), into the CNCF
// distribution registry with `crane copy --all-tags`, checks that each
// manifest kept its bytes and digest (so its annotations), and checks
// that a providerd whose only source is the registry, which it crawls,
// answers find as one whose only source is catalogd, which it follows by
// the change feed: `cimage find` and `cimage find --all-versions` in JSON,
// every field of every entry, and `cimage find NAME` as printed for a base
// image and an application image.
//
// No field is left out of the comparison. Those that could be specific to
// the source are equal here for these reasons:
//   - source: startProviderd names each providerd's one source catalog;
//     it names the source, not where it is (no entry field gives a URL).
//   - created: every seeded image carries the created annotation, which
//     both read. Without it catalogd gives the push time, which a crawl
//     cannot learn, and the crawl gives the config's created instead.
//   - signatures: a signature is a tag (sha256-<hex>.sig) that crane
//     copies with the others, and both read the flag from the tag.
//   - policy: neither source has a signature policy.
func TestRegistryCopyKeepsFind(t *testing.T) {
	crane := newClient(t, "crane")
	tool(t, "registry") // skip before seeding when it is missing
	began := time.Now()
	c := signedCatalog(t, t.TempDir())
	reg := startRegistry(t, "")
	src, dst := c.URL(""), "http://"+reg

	repos := repositoriesAt(t, src)
	for _, want := range []string{"nanoserver", "windowsservercore", "microsoft/iis"} {
		if !slices.Contains(repos, want) {
			t.Fatalf("catalogd's _catalog has no %s: %v", want, repos)
		}
	}
	copyStart := time.Now()
	for _, repo := range repos {
		crane.run(t, "copy", "--all-tags", "--insecure", c.Addr+"/"+repo, reg+"/"+repo)
	}
	copied := time.Since(copyStart)
	if got := repositoriesAt(t, dst); !slices.Equal(got, repos) {
		t.Fatalf("the registry's _catalog after the copy:\n  %v\nwant catalogd's:\n  %v", got, repos)
	}
	manifests, signatures := 0, 0
	for _, repo := range repos {
		tags := tagsAt(t, src, repo)
		if got := tagsAt(t, dst, repo); !slices.Equal(got, tags) {
			t.Fatalf("%s: the registry has the tags %v, catalogd %v", repo, got, tags)
		}
		for _, tag := range tags {
			want, wantDigest := manifestAt(t, src, repo, tag)
			got, gotDigest := manifestAt(t, dst, repo, tag)
			if gotDigest != wantDigest || !bytes.Equal(got, want) {
				t.Fatalf("%s:%s: the registry has %s (%d bytes), catalogd %s (%d bytes)", repo, tag, gotDigest, len(got), wantDigest, len(want))
			}
			manifests++
			if _, ok := find.SignatureTarget(tag); ok {
				signatures++
			}
		}
	}
	if signatures == 0 {
		t.Fatal("no signature tag was copied: the signatures field would be compared on nothing")
	}

	feed := startProviderd(t, src, "")
	crawl := startProviderd(t, dst, "")
	fst := waitSynced(t, feed, "feed")
	cst := waitSynced(t, crawl, "crawl")
	if fst.Entries == 0 || fst.Entries != cst.Entries {
		t.Fatalf("index entries: %d from the feed, %d from the crawl", fst.Entries, cst.Entries)
	}

	for _, args := range [][]string{{"find"}, {"find", "--all-versions"}} {
		f, cr := findJSON(t, feed, args...), findJSON(t, crawl, args...)
		if diffs := diffFind(f, cr); len(diffs) > 0 {
			t.Errorf("cimage %s: the crawl's answer differs from the feed's:\n%s", strings.Join(args, " "), strings.Join(diffs, "\n"))
		}
		// The comparison must have had something to compare.
		var fr api.FindResponse
		b, _ := json.Marshal(f)
		if err := json.Unmarshal(b, &fr); err != nil {
			t.Fatal(err)
		}
		var parents, osImages, signed, osVersions, publishers, descriptions int
		for _, e := range fr.Images {
			if e.Parent != nil && e.Parent.Digest != "" && e.Parent.Publisher != "" {
				parents++
			}
			if e.IsOSImage {
				osImages++
			}
			if e.Signatures {
				signed++
			}
			if e.OSVersion != "" {
				osVersions++
			}
			if e.Publisher != "" {
				publishers++
			}
			if e.Description != "" {
				descriptions++
			}
		}
		if parents == 0 || osImages == 0 || signed == 0 || osVersions == 0 || publishers == 0 || descriptions == 0 {
			t.Errorf("cimage %s: %d entries, with a resolved parent %d, base OS images %d, signed %d, with os.version %d, a publisher %d, a description %d: each should be some",
				strings.Join(args, " "), len(fr.Images), parents, osImages, signed, osVersions, publishers, descriptions)
		}
		t.Logf("cimage %s: %d entries alike (parents %d, base OS images %d, signed %d)", strings.Join(args, " "), len(fr.Images), parents, osImages, signed)
	}

	for _, name := range []string{"NanoServer", "microsoft/iis"} {
		f, cr := mustCimage(t, feed, "find", name), mustCimage(t, crawl, "find", name)
		if f != cr {
			t.Errorf("cimage find %s:\nfrom the feed:\n%s\nfrom the crawl:\n%s", name, f, cr)
		}
		if !strings.Contains(f, name) {
			t.Errorf("cimage find %s does not name it:\n%s", name, f)
		}
	}
	t.Logf("%d repositories, %d manifests (%d signatures) copied in %v; the whole test %v",
		len(repos), manifests, signatures, copied.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// TestPullThroughCacheServesEachBlobOnce pulls microsoft/iis twice with
// crane through the distribution registry set up as a pull-through cache
// of catalogd with catalogd's credentials: the cache authenticates at
// catalogd's /token, both pulls give catalogd's digest, and catalogd
// serves each blob of the image (config and layers) exactly once, at the
// first pull. A pull from catalogd itself then counts once more per blob,
// so that the count is known to see the GETs. It runs with each of
// catalogd's log formats, which the count reads.
func TestPullThroughCacheServesEachBlobOnce(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) { testPullThroughCache(t, "--log-format", format) })
	}
}

// testPullThroughCache is TestPullThroughCacheServesEachBlobOnce with a
// catalogd started with the flags extra.
func testPullThroughCache(t *testing.T, extra ...string) {
	crane := newClient(t, "crane")
	tool(t, "registry") // skip before seeding when it is missing
	c := startCatalogd(t, true, extra...)
	cache := strings.TrimPrefix(startPullThroughCache(t, c), "http://")
	const repo, tag = "microsoft/iis", "1.0.0.0"
	want := digestOf(t, c, repo, tag)
	m := manifestOf(t, c, repo, tag)
	blobs := []string{m.Config.Digest.String()}
	for _, l := range m.Layers {
		blobs = append(blobs, l.Digest.String())
	}

	before := blobGets(settledRequests(t, c))
	for pull := 1; pull <= 2; pull++ {
		layout := t.TempDir()
		crane.run(t, "pull", "--insecure", "--format", "oci", cache+"/"+repo+":"+tag, layout)
		if got := verifyLayout(t, layout); got != want {
			t.Fatalf("pull %d through the cache: manifest %s, catalogd has %s", pull, got, want)
		}
		reqs := settledRequests(t, c)
		gets := blobGets(reqs)
		for _, b := range blobs {
			if n := gets[b] - before[b]; n != 1 {
				t.Fatalf("after pull %d through the cache, catalogd served blob %s %d times, want once; its requests:\n%s", pull, b, n, describeRequests(reqs))
			}
		}
		if pull == 1 {
			authenticated := false
			for _, r := range reqs {
				if r.Path == "/token" && r.Status == http.StatusOK && r.User == c.User {
					authenticated = true
				}
			}
			if !authenticated {
				t.Fatalf("the cache got no token for %s from catalogd; its requests:\n%s", c.User, describeRequests(reqs))
			}
		}
	}

	// The control: a pull from catalogd itself is counted, once per blob.
	crane.run(t, "pull", "--insecure", "--format", "oci", c.Addr+"/"+repo+":"+tag, t.TempDir())
	reqs := settledRequests(t, c)
	gets := blobGets(reqs)
	for _, b := range blobs {
		if n := gets[b] - before[b]; n != 2 {
			t.Fatalf("after a pull from catalogd itself, blob %s counted %d times, want 2; catalogd's requests:\n%s", b, n, describeRequests(reqs))
		}
	}
	t.Logf("%d blobs of %s:%s, each served once by catalogd over two pulls through the cache", len(blobs), repo, tag)
}
