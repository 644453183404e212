package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/find"
)

// The size of the registry that TestCrawlOfALargeRegistry crawls.
const (
	crawlRepos = 1500
	crawlTags  = 10
	// crawlConns is the number of keep-alive connections that fill the
	// registry.
	crawlConns = 8
	// crawlWait bounds the wait for the first sync to complete.
	crawlWait = 5 * time.Minute
)

// crawlRepo is the repository number i of the large registry and
// crawlTitle the name of its images; crawlVersion is the version, and the
// tag, of its image number tag.
func crawlRepo(i int) string      { return fmt.Sprintf("crawl/app%04d", i) }
func crawlTitle(i int) string     { return fmt.Sprintf("CrawlApp%04d", i) }
func crawlVersion(tag int) string { return fmt.Sprintf("1.0.%d", tag) }

// incompleteWarning is the warning of find while the first crawl of the
// source named catalog is under way.
var incompleteWarning = regexp.MustCompile(`^source catalog: the index is incomplete: its first sync has read (\d+) of the (\d+) repositories listed so far; images may be missing$`)

// TestCrawlOfALargeRegistry fills the CNCF distribution registry, which
// has no find extension, with 1,500 repositories of 10 tags each, starts
// providerd with it as its only source, and checks that find warns while
// the first sync (a crawl) is incomplete, and that once it is complete
// every repository is found through providerd, with no warning.
func TestCrawlOfALargeRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the crawl of 15,000 tags takes a while")
	}
	reg := tool(t, "registry")
	began := time.Now()

	// The registry keeps its data in memory (its inmemory storage
	// driver): the same server, API and _catalog code as on disk, but on
	// this machine the filesystem driver takes about a minute to write
	// the 15,000 manifests (some 60,000 files) and as long again to
	// delete them, which is disk time, not what this test is about.
	addr := freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  inmemory: {}\nhttp:\n  addr: %s\n",
		addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	startProcess(t, reg, []string{"OTEL_SDK_DISABLED=true"}, "serve", cfg)
	base := "http://" + addr
	waitHTTP(t, base+"/v2/")

	fillStart := time.Now()
	if err := crawlFill(base, crawlRepos, crawlTags, crawlConns); err != nil {
		t.Fatalf("filling the registry: %v", err)
	}
	fill := time.Since(fillStart)
	t.Logf("filled the registry with %d repositories × %d tags (%d layerless images) over %d connections in %v (%.0f images/s)",
		crawlRepos, crawlTags, crawlRepos*crawlTags, crawlConns, fill.Round(time.Millisecond), float64(crawlRepos*crawlTags)/fill.Seconds())

	// While the first sync is incomplete. A Find waits at most 5 s for the
	// first sync of a new source, then answers from what the index holds,
	// with the warning. Both finds (the table and --output json) are sent
	// at once, right after providerd answers, so that they share that one
	// window of 5 s from the start of the crawl: a crawl of 15,000 tags (a
	// tags/list per repository, a GET per tag and a bbolt transaction per
	// repository, 4 repositories at a time) takes far longer than that
	// (some 20 s on 2 cores, of which the first 5 s read about a quarter).
	// Should it ever end within those 5 s, the finds rightly do not warn;
	// the test then fails and says so, rather than passing without having
	// seen the warning, since the warning is what it is here to check.
	crawlStart := time.Now()
	p := startProviderd(t, base, "")
	var table, asJSON cimageRun
	var wg sync.WaitGroup
	wg.Go(func() { table = runCimage(p, "find", "crawlapp*") })
	wg.Go(func() { asJSON = runCimage(p, "--output", "json", "find", "crawlapp*") })
	wg.Wait()
	early := time.Since(crawlStart)
	for _, r := range []cimageRun{table, asJSON} {
		if r.err != nil || r.code != 0 {
			t.Fatalf("cimage %s while the first sync runs: exit %d, %v\nstdout:\n%.2000s\nstderr:\n%s", r.args, r.code, r.err, r.stdout, r.stderr)
		}
	}
	var earlyJSON api.FindResponse
	if err := json.Unmarshal([]byte(asJSON.stdout), &earlyJSON); err != nil {
		t.Fatalf("cimage %s: %v\n%.2000s", asJSON.args, err, asJSON.stdout)
	}
	if !strings.Contains(table.stderr, "WARNING: source catalog: the index is incomplete") || len(earlyJSON.Warnings) == 0 {
		st := crawlStatus(t, p)
		if st.Complete {
			t.Fatalf("the first sync of %d tags was complete %v after providerd's start, within the 5 s a Find waits for it: "+
				"find could not be seen warning while the index is incomplete; make the registry larger (status %+v)",
				crawlRepos*crawlTags, early.Round(time.Millisecond), st)
		}
		t.Fatalf("find did not warn although the first sync is not complete (status %+v)\ntable stderr:\n%s\njson warnings: %q",
			st, table.stderr, earlyJSON.Warnings)
	}
	// The table's warning is on stderr only, one line before the table.
	if strings.Contains(table.stdout, "WARNING") {
		t.Fatalf("the warning is on stdout:\n%.2000s", table.stdout)
	}
	lines := strings.Split(strings.TrimRight(table.stderr, "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("stderr of find, want one warning line:\n%s", table.stderr)
	}
	for _, w := range []string{strings.TrimPrefix(lines[0], "WARNING: "), earlyJSON.Warnings[0]} {
		m := incompleteWarning.FindStringSubmatch(w)
		if m == nil || len(earlyJSON.Warnings) != 1 {
			t.Fatalf("the warnings while the first sync runs: %q and %q, want one matching %s", lines[0], earlyJSON.Warnings, incompleteWarning)
		}
		read, listed := atoi(t, m[1]), atoi(t, m[2])
		if listed == 0 || listed > crawlRepos || read >= listed {
			t.Fatalf("warning %q: read %d of %d, want fewer read than listed, and at most %d listed", w, read, listed, crawlRepos)
		}
	}
	t.Logf("%v after providerd's start, find warned %q and found %d of the %d names so far",
		early.Round(time.Millisecond), earlyJSON.Warnings[0], len(earlyJSON.Images), crawlRepos)

	// Wait for the first sync to complete. The counts of its progress
	// never go back.
	deadline := crawlStart.Add(crawlWait)
	var st api.SourceStatus
	lastRead, lastLog := 0, time.Now()
	for {
		st = crawlStatus(t, p)
		if st.RepositoriesRead < lastRead {
			t.Fatalf("repositoriesRead went back from %d to %d: %+v", lastRead, st.RepositoriesRead, st)
		}
		lastRead = st.RepositoriesRead
		if st.Complete {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first sync is not complete %v after providerd's start: %+v", crawlWait, st)
		}
		if time.Since(lastLog) >= 15*time.Second {
			t.Logf("%v: %d of %d repositories read, %d entries", time.Since(crawlStart).Round(time.Second), st.RepositoriesRead, st.Repositories, st.Entries)
			lastLog = time.Now()
		}
		time.Sleep(200 * time.Millisecond)
	}
	crawl := time.Since(crawlStart)
	t.Logf("the first sync (a crawl of %d repositories, %d tags) was complete %v after providerd's start (%.0f tags/s)",
		crawlRepos, crawlRepos*crawlTags, crawl.Round(time.Millisecond), float64(crawlRepos*crawlTags)/crawl.Seconds())
	if st.Mode != "crawl" || st.Entries != crawlRepos*crawlTags || st.Repositories != crawlRepos || st.RepositoriesRead != crawlRepos ||
		st.LastError != "" || st.Warning != "" || st.LastSync == nil {
		t.Fatalf("status of the complete index: %+v; want mode crawl, %d entries, %d repositories listed and read, no error or warning, a last sync",
			st, crawlRepos*crawlTags, crawlRepos)
	}

	// Every repository is found, once, with its latest version.
	r := runCimage(p, "--output", "json", "find")
	if r.err != nil || r.code != 0 || r.stderr != "" {
		t.Fatalf("cimage %s: exit %d, %v\nstderr:\n%s", r.args, r.code, r.err, r.stderr)
	}
	var all api.FindResponse
	if err := json.Unmarshal([]byte(r.stdout), &all); err != nil {
		t.Fatalf("cimage %s: %v\n%.2000s", r.args, err, r.stdout)
	}
	if len(all.Warnings) != 0 {
		t.Fatalf("find warns on a complete index: %q", all.Warnings)
	}
	if len(all.Images) != crawlRepos {
		t.Fatalf("find found %d images, want %d: one per repository", len(all.Images), crawlRepos)
	}
	byRepo := map[string]api.FindEntry{}
	for _, e := range all.Images {
		byRepo[e.Repository] = e
	}
	for i := range crawlRepos {
		e, ok := byRepo[crawlRepo(i)]
		if !ok {
			t.Fatalf("repository %s is not found (%d distinct repositories are, of %d)", crawlRepo(i), len(byRepo), crawlRepos)
		}
		if e.Name != crawlTitle(i) || e.Version != crawlVersion(crawlTags-1) || e.Source != "catalog" || e.Publisher != "CN=Crawl" ||
			!strings.HasPrefix(e.Digest, "sha256:") {
			t.Fatalf("the entry of %s: %+v; want %s %s from catalog, by CN=Crawl", crawlRepo(i), e, crawlTitle(i), crawlVersion(crawlTags-1))
		}
	}

	// The table says the same, with no warning.
	r = runCimage(p, "find")
	if r.err != nil || r.code != 0 || r.stderr != "" {
		t.Fatalf("cimage find on the complete index: exit %d, %v\nstderr:\n%s", r.code, r.err, r.stderr)
	}
	if n := strings.Count(r.stdout, " "+crawlVersion(crawlTags-1)+" "); n != crawlRepos {
		t.Fatalf("the table of find has %d rows of version %s, want %d:\n%.2000s", n, crawlVersion(crawlTags-1), crawlRepos, r.stdout)
	}

	// A few names, each with its ten versions.
	for _, i := range []int{0, 1, 999, 1000, crawlRepos / 2, crawlRepos - 1} {
		r := runCimage(p, "--output", "json", "find", crawlTitle(i), "--all-versions")
		if r.err != nil || r.code != 0 || r.stderr != "" {
			t.Fatalf("cimage %s: exit %d, %v\nstderr:\n%s", r.args, r.code, r.err, r.stderr)
		}
		var one api.FindResponse
		if err := json.Unmarshal([]byte(r.stdout), &one); err != nil {
			t.Fatalf("cimage %s: %v\n%s", r.args, err, r.stdout)
		}
		versions := map[string]bool{}
		for _, e := range one.Images {
			if e.Name != crawlTitle(i) || e.Repository != crawlRepo(i) {
				t.Fatalf("find %s --all-versions found %s in %s", crawlTitle(i), e.Name, e.Repository)
			}
			versions[e.Version] = true
		}
		if len(one.Images) != crawlTags || len(versions) != crawlTags || len(one.Warnings) != 0 {
			t.Fatalf("find %s --all-versions: %d images, %d versions, warnings %q; want %d versions and no warning",
				crawlTitle(i), len(one.Images), len(versions), one.Warnings, crawlTags)
		}
		for tag := range crawlTags {
			if !versions[crawlVersion(tag)] {
				t.Fatalf("find %s --all-versions has no version %s", crawlTitle(i), crawlVersion(tag))
			}
		}
	}
	t.Logf("fill %v, crawl %v, the whole test %v", fill.Round(time.Millisecond), crawl.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// crawlStatus is the status of providerd's index of its source catalog,
// from `cimage --output json source list`.
func crawlStatus(t *testing.T, p *providerd) api.SourceStatus {
	t.Helper()
	r := runCimage(p, "--output", "json", "source", "list")
	if r.err != nil || r.code != 0 {
		t.Fatalf("cimage %s: exit %d, %v\n%s%s", r.args, r.code, r.err, r.stdout, r.stderr)
	}
	var out api.SourcesResponse
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("cimage %s: %v\n%s", r.args, err, r.stdout)
	}
	if len(out.Sources) != 1 || out.Sources[0].Name != "catalog" || out.Sources[0].Status == nil {
		t.Fatalf("cimage %s: want the one source catalog with its status:\n%s", r.args, r.stdout)
	}
	return *out.Sources[0].Status
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// cimageRun is the outcome of one run of cimage, its two streams apart.
type cimageRun struct {
	args           string
	stdout, stderr string
	code           int
	err            error
}

// runCimage runs cimage against p's unix socket, for at most 3 minutes.
// It calls no method of testing.T, so that it may run on any goroutine.
func runCimage(p *providerd, args ...string) cimageRun {
	r := cimageRun{args: strings.Join(args, " ")}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "cimage"), args...)
	cmd.Env = append(os.Environ(), "CIMAGE_ENDPOINT=unix://"+p.Socket())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r.stdout, r.stderr = stdout.String(), stderr.String()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		r.err = err
	}
	return r
}

// crawlFill pushes, over conns keep-alive connections, repos repositories
// of tags layerless images each: per repository, one config blob of its
// own, then a manifest per tag, titled and versioned by annotations. A
// connection takes the next repository until none is left or a push
// failed.
func crawlFill(base string, repos, tags, conns int) error {
	var next atomic.Int64
	var failed atomic.Bool
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer hc.CloseIdleConnections()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= repos {
					return
				}
				if err := crawlPushRepo(hc, base, i, tags); err != nil {
					failed.Store(true)
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// crawlPushRepo pushes the config and the tags manifests of repository i.
func crawlPushRepo(hc *http.Client, base string, i, tags int) error {
	repo := crawlRepo(i)
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"windows","rootfs":{"type":"layers","diff_ids":[]},"comment":%q}`, repo))
	d := digest.FromBytes(cfg)
	// A monolithic upload as the distribution registry takes it: a POST
	// that opens the upload (202 and a Location), then one PUT of the
	// bytes with the digest.
	resp, err := crawlSend(hc, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "", nil, http.StatusAccepted)
	if err != nil {
		return err
	}
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("POST blob upload in %s: %v", repo, err)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	if _, err := crawlSend(hc, http.MethodPut, loc.String(), "application/octet-stream", cfg, http.StatusCreated); err != nil {
		return err
	}
	for tag := range tags {
		m, err := json.Marshal(ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
			Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: d, Size: int64(len(cfg))},
			Layers: []ocispec.Descriptor{},
			Annotations: map[string]string{
				find.AnnotationTitle: crawlTitle(i), find.AnnotationVersion: crawlVersion(tag), find.AnnotationVendor: "CN=Crawl",
			},
		})
		if err != nil {
			return err
		}
		if _, err := crawlSend(hc, http.MethodPut, base+"/v2/"+repo+"/manifests/"+crawlVersion(tag), ocispec.MediaTypeImageManifest, m, http.StatusCreated); err != nil {
			return err
		}
	}
	return nil
}

// crawlSend makes one request, reads its body to the end (so that the
// connection is reused) and checks its status.
func crawlSend(hc *http.Client, method, url, ctype string, body []byte, want int) (*http.Response, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", method, url, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d, want %d: %.500s", method, url, resp.StatusCode, want, b)
	}
	return resp, nil
}
