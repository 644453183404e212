package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
)

// fleetHosts is the number of providerd instances that install at once.
const fleetHosts = 8

// The image the fleet installs: the seed's WindowsServerCore at its
// latest version, with whatever parents it is recorded with.
const (
	fleetImage   = "WindowsServerCore"
	fleetVersion = "10.0.14393.0"
)

// TestFleetThroughPullThroughCache installs WindowsServerCore on eight
// providerd instances, each with catalogd as the source's location and the
// distribution registry as a pull-through cache of catalogd as its mirror,
// and counts what catalogd serves; then, with catalogd killed, a ninth
// providerd with the same source builds its index from the cache, says so
// in find and in source list, and installs the image from the cache alone.
//
// The cache does not make simultaneous cold misses of a blob one upstream
// GET: the distribution registry (v3.1.2, registry/proxy/proxyblobstore.go)
// keeps a map of the blobs it is fetching, and a request for a blob in
// that map is streamed from the upstream by a GET of its own, neither held
// back until the first fetch commits nor cached. So the fleet rolls out as
// the README's Fleet section says: one host first, which fills the cache,
// then the seven others at once; catalogd then serves each blob exactly
// once. A second wave, all eight at once after the image is removed from
// each (blobs collected), must make catalogd serve no blob at all.
func TestFleetThroughPullThroughCache(t *testing.T) {
	tool(t, "registry") // skip before seeding when it is missing
	c := startCatalogd(t, true)
	cache := startPullThroughCache(t, c)
	source := c.URL("") + ",mirror=" + cache

	fleet := make([]*providerd, fleetHosts)
	for i := range fleet {
		fleet[i] = startProviderd(t, source, "")
	}
	earlier := settledRequests(t, c) // catalogd's log is only appended to
	before := blobGets(earlier)

	// The first wave: one host on the cold cache, then the others at once.
	took := installAtOnce(t, fleet[:1])
	took += installAtOnce(t, fleet[1:])
	want := sameChainOnEach(t, fleet) // the image, then its parents
	reqs := settledRequests(t, c)
	var blobs []string // config and layers of each
	for _, img := range want {
		m := manifestOf(t, c, img.Repository, img.Digest)
		blobs = append(blobs, m.Config.Digest.String())
		for _, l := range m.Layers {
			blobs = append(blobs, l.Digest.String())
		}
	}
	gets := blobGets(reqs)
	var counts []string
	for _, b := range blobs {
		n := gets[b] - before[b]
		counts = append(counts, fmt.Sprintf("%s: %d", b, n))
		if n != 1 {
			t.Fatalf("%d hosts installing %s through a cache that one of them filled: catalogd served blob %s %d times, want exactly 1; its requests:\n%s",
				fleetHosts, describeChain(want), b, n, describeRequests(reqs[len(earlier):]))
		}
	}
	t.Logf("first wave: 1 host, then %d at once, installed %s in %s through a cold cache; catalogd's GETs of its %d blobs: %s; of manifests: %d",
		fleetHosts-1, describeChain(want), took.Round(time.Millisecond), len(blobs), strings.Join(counts, ", "), manifestGets(reqs[len(earlier):]))

	// The second wave, on the warm cache: catalogd serves no blob.
	for i, p := range fleet {
		mustCimage(t, p, "remove", fleetImage, "--required-version", fleetVersion)
		for _, img := range want[1:] {
			mustCimage(t, p, "remove", img.Name, "--required-version", img.Version)
		}
		if left := blobFiles(t, p.Root); len(left) != 0 {
			t.Fatalf("host %d still has %d blobs after the removal: %v", i, len(left), left)
		}
	}
	earlier = settledRequests(t, c)
	took = installAtOnce(t, fleet)
	if got, exp := describeChain(sameChainOnEach(t, fleet)), describeChain(want); got != exp {
		t.Fatalf("the second wave installed %s, the first %s", got, exp)
	}
	reqs = settledRequests(t, c)
	if n := len(blobGets(reqs[len(earlier):])); n != 0 {
		t.Fatalf("%d hosts installing %s at once through a warm cache: catalogd served %d blobs, want none; its requests:\n%s",
			fleetHosts, describeChain(want), n, describeRequests(reqs[len(earlier):]))
	}
	t.Logf("second wave: %d hosts installed it again at once in %s through the warm cache; catalogd served no blob (manifest GETs: %d)",
		fleetHosts, took.Round(time.Millisecond), manifestGets(reqs[len(earlier):]))

	// Without catalogd, a new host builds its index from the cache and
	// installs from it. The index is a crawl of what the cache holds: the
	// fleet's installs asked the cache for each manifest by its tag
	// (endpointSource.ManifestAtTag), so it holds the tags too.
	c.kill(t)
	p := startProviderd(t, source, "")
	st := waitOrigin(t, p, cache)
	find := runCimage(p, "find", fleetImage)
	if find.err != nil || find.code != 0 {
		t.Fatalf("cimage %s without catalogd: exit %d, %v\nstdout: %s\nstderr: %s", find.args, find.code, find.err, find.stdout, find.stderr)
	}
	warning := "source catalog: its location is unreachable; the entries come from its mirror " + cache
	if !strings.Contains(find.stderr, "WARNING: "+warning) || strings.Contains(find.stdout, "WARNING") {
		t.Fatalf("cimage find without catalogd: want the warning %q on stderr alone\nstdout: %s\nstderr: %s", warning, find.stdout, find.stderr)
	}
	if !strings.Contains(find.stdout, fleetImage) || !strings.Contains(find.stdout, fleetVersion) {
		t.Fatalf("cimage find without catalogd does not list %s %s:\n%s", fleetImage, fleetVersion, find.stdout)
	}
	out := mustCimage(t, p, "install", fleetImage, "--required-version", fleetVersion)
	if !downloadedIn.MatchString(out) {
		t.Fatalf("install from the cache alone:\n%s", out)
	}
	if got, exp := describeChain(installedChain(t, p, fleetImage, fleetVersion)), describeChain(want); got != exp {
		t.Fatalf("the host without catalogd installed %s, the fleet %s", got, exp)
	}
	t.Logf("without catalogd, a new host read an index of %d entries from %s and installed %s from it", st.Entries, st.Origin, describeChain(want))
}

// installAtOnce installs fleetImage at fleetVersion on every host at the
// same moment, each with cimage as an administrator would, and returns how
// long the last took. Each run is bounded by runCimage's limit, the whole
// by four minutes; a run that fails fails the test.
func installAtOnce(t *testing.T, hosts []*providerd) time.Duration {
	t.Helper()
	start := make(chan struct{})
	runs := make([]cimageRun, len(hosts))
	var wg sync.WaitGroup
	for i, p := range hosts {
		wg.Go(func() {
			<-start
			runs[i] = runCimage(p, "install", fleetImage, "--required-version", fleetVersion)
		})
	}
	began := time.Now()
	close(start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(4 * time.Minute):
		t.Fatalf("%d concurrent installs not done in 4 minutes", len(hosts))
	}
	took := time.Since(began)
	for i, r := range runs {
		if r.err != nil || r.code != 0 || !downloadedIn.MatchString(r.stdout) {
			t.Fatalf("host %d: cimage %s: exit %d, %v\nstdout: %s\nstderr: %s", i, r.args, r.code, r.err, r.stdout, r.stderr)
		}
	}
	return took
}

// sameChainOnEach checks that every host has fleetImage at fleetVersion
// with the same digest and parents, and returns the chain, the image
// first.
func sameChainOnEach(t *testing.T, hosts []*providerd) []api.Image {
	t.Helper()
	var want []api.Image
	for i, p := range hosts {
		chain := installedChain(t, p, fleetImage, fleetVersion)
		if i == 0 {
			want = chain
			continue
		}
		if got, exp := describeChain(chain), describeChain(want); got != exp {
			t.Fatalf("host %d installed %s, host 0 %s", i, got, exp)
		}
	}
	return want
}

// manifestGets counts the GETs of manifests that catalogd answered 200.
func manifestGets(reqs []loggedRequest) int {
	n := 0
	for _, r := range reqs {
		if r.Method == http.MethodGet && r.Status == http.StatusOK && strings.Contains(r.Path, "/manifests/") {
			n++
		}
	}
	return n
}

// installedChain reads, with cimage images, the image name at version on
// p and each parent it records, the image first. It fails the test when
// one is not installed or a parent's digest differs from the record's.
func installedChain(t *testing.T, p *providerd, name, version string) []api.Image {
	t.Helper()
	var resp api.ImagesResponse
	out := mustCimage(t, p, "--output", "json", "images")
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("cimage images on %s: %v\n%s", p.Addr, err, out)
	}
	var chain []api.Image
	for range 16 { // a bound on the depth of the chain
		img := findImage(resp.Images, name, version)
		if img == nil {
			t.Fatalf("%s %s is not installed on %s: %s", name, version, p.Addr, describe(resp.Images))
		}
		if len(chain) > 0 && chain[len(chain)-1].ParentImage.Digest != img.Digest {
			t.Fatalf("on %s, the parent %s %s is %s, recorded as %s", p.Addr, name, version, img.Digest, chain[len(chain)-1].ParentImage.Digest)
		}
		chain = append(chain, *img)
		if img.ParentImage == nil {
			return chain
		}
		name, version = img.ParentImage.Name, img.ParentImage.Version
	}
	t.Fatalf("on %s, the chain of parents of %s is deeper than 16", p.Addr, chain[0].Name)
	return nil
}

// describeChain names the images of a chain with their digests.
func describeChain(chain []api.Image) string {
	var s []string
	for _, img := range chain {
		s = append(s, fmt.Sprintf("%s %s (%s)", img.Name, img.Version, img.Digest))
	}
	return strings.Join(s, " on ")
}

// waitOrigin waits, up to a minute, until p's index of the source catalog
// is a whole sync from the mirror origin, and returns its status as
// cimage source list --output json gives it.
func waitOrigin(t *testing.T, p *providerd, origin string) api.SourceStatus {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last string
	for {
		r := runCimage(p, "--output", "json", "source", "list")
		if r.err != nil || r.code != 0 {
			t.Fatalf("cimage %s: exit %d, %v\n%s%s", r.args, r.code, r.err, r.stdout, r.stderr)
		}
		var resp api.SourcesResponse
		if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
			t.Fatalf("cimage %s: %v\n%s", r.args, err, r.stdout)
		}
		for _, s := range resp.Sources {
			if s.Name != "catalog" || s.Status == nil {
				continue
			}
			if len(s.Mirrors) != 1 || s.Mirrors[0].Location != origin {
				t.Fatalf("source catalog's mirrors: %+v, want %s", s.Mirrors, origin)
			}
			if s.Status.Origin == origin && s.Status.Complete && !s.Status.Syncing {
				return *s.Status
			}
		}
		last = r.stdout
		if time.Now().After(deadline) {
			t.Fatalf("the index of catalog did not come whole from %s within a minute; cimage source list:\n%s", origin, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
