// Command find measures the metadata plane of catalogd at catalog scale:
// it fills a catalogd and a CNCF distribution registry with the same
// --names × --versions layerless images over HTTP (keep-alive, --conns
// connections), then reports p50 and p99 over --requests requests of each
// query form of the find extension, next to the registry's tags/list for
// the same repository, and the peak RSS of both servers.
//
// It is run by `make bench` (bench/run.sh; BENCH=find runs it alone).
// Every server listens on 127.0.0.1. The report goes to stdout and to --out
// as Markdown.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/bench/harness"
	"github.com/containerprovider/containerprovider/catalog/find"
)

func main() {
	var (
		binDir   = flag.String("bin", "bin", "directory holding catalogd")
		toolsDir = flag.String("tools", ".tools/bin", "directory holding the distribution registry")
		names    = flag.Int("names", 1000, "image names (repositories)")
		versions = flag.Int("versions", 20, "versions (tags) of each name")
		regNames = flag.Int("registry-names", 0, "names pushed to the distribution registry (default: --names)")
		hostImgs = flag.Int("host-images", 0, "install this many layerless images into a providerd and time Get, the listing, restarts (0: skip)")
		hostCli  = flag.Int("host-clients", 6, "concurrent clients of the --host-images installs")
		hostRecs = flag.Int("host-records", 0, "before the restarts, install more images until the records of images and jobs reach this many (at most the catalog)")
		requests = flag.Int("requests", 200, "requests per query form")
		conns    = flag.Int("conns", 8, "connections that fill the servers")
		out      = flag.String("out", "", "write the Markdown report here too")
	)
	flag.Parse()
	work, err := os.MkdirTemp("", "cp-bench-find-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(work)
	procs := &harness.Procs{LogDir: work}
	defer procs.StopAll()

	catAddr, err := harness.FreeAddr()
	if err != nil {
		fatal(err)
	}
	cat, err := procs.Start(filepath.Join(*binDir, "catalogd"), nil, "serve", "--root", filepath.Join(work, "catalogd"), "--listen", catAddr)
	if err != nil {
		fatal(err)
	}
	if err := harness.WaitReady("http://" + catAddr + "/healthz"); err != nil {
		fatal(err)
	}
	anon := newAnonPeak()
	anon.watch(cat.Process.Pid)
	pw, err := os.ReadFile(filepath.Join(work, "catalogd", "auth", "admin-password"))
	if err != nil {
		fatal(err)
	}
	catalogd := target{base: "http://" + catAddr, user: "admin", password: strings.TrimSpace(string(pw))}

	var registry *target
	var reg interface{ Pid() int }
	regBin := filepath.Join(*toolsDir, "registry")
	if _, err := os.Stat(regBin); err == nil {
		regAddr, err := harness.FreeAddr()
		if err != nil {
			fatal(err)
		}
		cfg := filepath.Join(work, "registry.yml")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(
			"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n",
			filepath.Join(work, "registry"), regAddr)), 0o644); err != nil {
			fatal(err)
		}
		cmd, err := procs.Start(regBin, []string{"OTEL_SDK_DISABLED=true"}, "serve", cfg)
		if err != nil {
			fatal(err)
		}
		if err := harness.WaitReady("http://" + regAddr + "/v2/"); err != nil {
			fatal(err)
		}
		registry = &target{base: "http://" + regAddr}
		reg = pidOf{cmd.Process.Pid}
		anon.watch(cmd.Process.Pid)
	} else {
		fmt.Fprintf(os.Stderr, "no distribution registry at %s: its figures are left out\n", regBin)
	}

	total := *names * *versions
	if *regNames <= 0 || *regNames > *names {
		*regNames = *names
	}
	for _, tg := range []*target{&catalogd, registry} {
		if tg == nil {
			continue
		}
		n := *names
		if tg == registry {
			n = *regNames
		}
		tg.images = n * *versions
		harness.Step("pushing %d layerless images (%d names × %d versions) to %s over %d connections", tg.images, n, *versions, tg.base, *conns)
		start := time.Now()
		if err := fill(tg, n, *versions, *conns); err != nil {
			fatal(err)
		}
		d := time.Since(start)
		tg.fillTime = d
		harness.Step("  %v, %.0f pushes/s", d.Round(time.Millisecond), float64(tg.images)/d.Seconds())
	}

	// A name that both servers hold.
	mid := *regNames / 2
	exact := fmt.Sprintf("App%05d", mid)
	repo := strings.ToLower(exact)
	wild := fmt.Sprintf("App%04d*", mid/10) // App0050* matches 10 names
	forms := []struct{ label, url string }{
		{"catalogd `_find?name=" + exact + "`", catalogd.base + "/v2/_find?name=" + exact},
		{"catalogd `_find?name=" + wild + "` (10 names)", catalogd.base + "/v2/_find?name=" + wild},
		{"catalogd `_find` requiredVersion", catalogd.base + "/v2/_find?name=" + exact + "&requiredVersion=1.0." + fmt.Sprint(*versions/2)},
		{"catalogd `_find` minimumVersion and maximumVersion", catalogd.base + "/v2/_find?name=" + exact + "&minimumVersion=1.0.2&maximumVersion=1.0.8"},
		{"catalogd `_find` allVersions", catalogd.base + "/v2/_find?name=" + exact + "&allVersions=true"},
	}
	if registry != nil {
		forms = append(forms, struct{ label, url string }{"distribution registry `tags/list` of " + repo, registry.base + "/v2/" + repo + "/tags/list"})
	}
	hc := &http.Client{Timeout: time.Minute}
	type row struct {
		label    string
		p50, p99 time.Duration
		bytes, n int
	}
	var rows []row
	for _, f := range forms {
		lat, size, err := measure(hc, f.url, *requests)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", f.label, err))
		}
		rows = append(rows, row{f.label, pct(lat, 50), pct(lat, 99), size, len(lat)})
		harness.Step("%s: p50 %v, p99 %v (%d bytes)", f.label, pct(lat, 50), pct(lat, 99), size)
	}
	full, fullSize, err := measure(hc, catalogd.base+"/v2/_find", 5)
	if err != nil {
		fatal(err)
	}
	catRSS, _ := harness.PeakRSS(cat.Process.Pid)

	// providerd: the first sync of its index from catalogd's feed, Find
	// on the synced index, and cimage install of layerless images.
	harness.Step("providerd: the first sync from catalogd (%d images)", total)
	pc, err := startProviderd(procs, *binDir, work, "catalogd", "catalog="+catalogd.base)
	if err != nil {
		fatal(err)
	}
	anon.watch(pc.pid)
	syncCat, nCat, err := pc.waitSynced("catalog", 30*time.Minute)
	if err != nil {
		fatal(err)
	}
	harness.Step("  %v, %d entries", syncCat.Round(time.Millisecond), nCat)
	provFind, provFindSize, err := pc.measureFind(hc, exact, *requests)
	if err != nil {
		fatal(fmt.Errorf("providerd find: %w", err))
	}
	harness.Step("providerd `/v1/find?name=%s`: p50 %v, p99 %v", exact, pct(provFind, 50), pct(provFind, 99))
	var vs []string
	for v := range min(*versions, 20) {
		vs = append(vs, fmt.Sprintf("1.0.%d", v))
	}
	installs, err := pc.installs(*binDir, exact, vs)
	if err != nil {
		fatal(err)
	}
	harness.Step("cimage install of a layerless image: p50 %v over %d", pct(installs, 50), len(installs))
	provCatRSS, _ := harness.PeakRSS(pc.pid)

	var hosts *hostFigures
	if *hostImgs > 0 {
		h, err := hostRecords(procs, *binDir, work, catalogd.base, min(*hostImgs, total), *hostRecs, total, *names, *versions, *hostCli, *requests, anon)
		if err != nil {
			fatal(fmt.Errorf("host records: %w", err))
		}
		hosts = &h
	}

	var syncReg, craneTime time.Duration
	var nReg, craneTags int
	var provRegRSS, regRSS int64
	var prPid int
	if registry != nil {
		harness.Step("providerd: the first sync from the distribution registry (a crawl)")
		pr, err := startProviderd(procs, *binDir, work, "registry", "registry="+registry.base)
		if err != nil {
			fatal(err)
		}
		anon.watch(pr.pid)
		prPid = pr.pid
		if syncReg, nReg, err = pr.waitSynced("registry", 30*time.Minute); err != nil {
			fatal(err)
		}
		harness.Step("  %v, %d entries", syncReg.Round(time.Millisecond), nReg)
		provRegRSS, _ = harness.PeakRSS(pr.pid)
		if crane := filepath.Join(*toolsDir, "crane"); fileExists(crane) {
			harness.Step("crane catalog, then crane ls of each repository")
			if craneTime, craneTags, err = craneLoop(crane, strings.TrimPrefix(registry.base, "http://")); err != nil {
				fatal(err)
			}
			harness.Step("  %v, %d tags", craneTime.Round(time.Millisecond), craneTags)
		}
		regRSS, _ = harness.PeakRSS(reg.Pid())
	}

	var sb strings.Builder
	fmt.Fprintf(&sb, "# find at catalog scale\n\ncatalogd: %d names × %d versions = %d layerless images", *names, *versions, total)
	if registry != nil {
		fmt.Fprintf(&sb, "; the distribution registry: %d names × %d versions = %d", *regNames, *versions, registry.images)
	}
	fmt.Fprintf(&sb, "; pushed over HTTP with %d connections. %d requests per query form, one client, keep-alive; one run on this machine (%d CPUs).\n\n",
		*conns, *requests, runtime.NumCPU())
	fmt.Fprintf(&sb, "| query | p50 | p99 | answer |\n|---|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&sb, "| %s | %s | %s | %d B |\n", r.label, ms(r.p50), ms(r.p99), r.bytes)
	}
	fmt.Fprintf(&sb, "| catalogd `_find` full listing (5 requests) | %s | %s | %d B |\n", ms(pct(full, 50)), ms(pct(full, 99)), fullSize)
	if registry != nil {
		fmt.Fprintf(&sb, "\n`_find?name=%s` / `tags/list`: %.2f at p50.\n", exact, float64(rows[0].p50)/float64(rows[len(rows)-1].p50))
	}
	fmt.Fprintf(&sb, "\n## providerd\n\n| measure | figure |\n|---|---:|\n")
	fmt.Fprintf(&sb, "| first sync of the index from catalogd's feed (%d entries), from providerd's start | %v |\n", nCat, syncCat.Round(time.Millisecond))
	fmt.Fprintf(&sb, "| `GET /v1/find?name=%s` on the synced index, p50 / p99 over %d | %s / %s (%d B) |\n", exact, len(provFind), ms(pct(provFind, 50)), ms(pct(provFind, 99)), provFindSize)
	fmt.Fprintf(&sb, "| `cimage install %s --required-version V` of a layerless image, end to end, p50 / max over %d | %s / %s |\n", exact, len(installs), ms(pct(installs, 50)), ms(pct(installs, 100)))
	if registry != nil {
		fmt.Fprintf(&sb, "| first sync of the index from the distribution registry by a crawl (%d entries) | %v |\n", nReg, syncReg.Round(time.Millisecond))
		if craneTime > 0 {
			fmt.Fprintf(&sb, "| `crane catalog`, then `crane ls` of each repository, one after the other (%d tags; no manifest read) | %v |\n", craneTags, craneTime.Round(time.Millisecond))
		}
	}
	if h := hosts; h != nil {
		fmt.Fprintf(&sb, "\n## providerd with %d installed images\n\n| measure | figure |\n|---|---:|\n", h.images)
		fmt.Fprintf(&sb, "| %d layerless installs, %d clients | %v, %.0f installs/s |\n", h.images, h.clients, h.installTime.Round(time.Millisecond), float64(h.images)/h.installTime.Seconds())
		fmt.Fprintf(&sb, "| `GET /v1/images?name=` one name, p50 / p99 over %d | %s / %s (%d B) |\n", len(h.getByName), ms(pct(h.getByName, 50)), ms(pct(h.getByName, 99)), h.getSize)
		fmt.Fprintf(&sb, "| `GET /v1/images`, the full listing, p50 / p99 over %d | %s / %s (%d B) |\n", len(h.listing), ms(pct(h.listing, 50)), ms(pct(h.listing, 99)), h.listingSize)
		fmt.Fprintf(&sb, "| restart to a served `/healthz` (%d records of images and jobs), p50 / max over %d | %s / %s |\n", h.records, len(h.restart), ms(pct(h.restart, 50)), ms(pct(h.restart, 100)))
		fmt.Fprintf(&sb, "| peak RSS / peak RssAnon | %s / %s |\n", harness.Human(h.rss), harness.Human(h.anon))
	}
	fmt.Fprintf(&sb, "\nThe crawl reads each tag's manifest and each image config as well (for the entry's annotations, size, created and os.version), which `crane ls` does not.\n")
	fmt.Fprintf(&sb, "\nPeak RSS is VmHWM: it counts the pages of bbolt's memory-mapped database that the process has mapped, which both daemons drop from their page tables when their file-backed resident memory passes 64 MiB (checked twice a second); peak RssAnon (sampled every 100 ms) is the memory of the process itself.\n")
	fmt.Fprintf(&sb, "\n| server | fill | peak RSS | peak RssAnon |\n|---|---:|---:|---:|\n| catalogd | %v | %s | %s |\n",
		catalogd.fillTime.Round(time.Millisecond), harness.Human(catRSS), harness.Human(anon.peak(cat.Process.Pid)))
	if registry != nil {
		fmt.Fprintf(&sb, "| distribution registry (%d images) | %v | %s | %s |\n", registry.images, registry.fillTime.Round(time.Millisecond),
			harness.Human(regRSS), harness.Human(anon.peak(reg.Pid())))
	}
	fmt.Fprintf(&sb, "| providerd, index of catalogd (sync, finds, installs) | | %s | %s |\n", harness.Human(provCatRSS), harness.Human(anon.peak(pc.pid)))
	if registry != nil {
		fmt.Fprintf(&sb, "| providerd, index of the distribution registry (crawl) | | %s | %s |\n", harness.Human(provRegRSS), harness.Human(anon.peak(prPid)))
	}
	fmt.Print(sb.String())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(sb.String()), 0o644); err != nil {
			fatal(err)
		}
	}
}

type pidOf struct{ pid int }

func (p pidOf) Pid() int { return p.pid }

// target is a registry to fill and query.
type target struct {
	base, user, password string
	images               int
	fillTime             time.Duration
}

// fill pushes App<i>:1.0.<v> for every name and version, a config and a
// manifest each, over conns connections.
func fill(tg *target, names, versions, conns int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for {
				i := int(next.Add(1) - 1)
				if i >= names*versions {
					return
				}
				if err := pushOne(hc, tg, i/versions, i%versions); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func pushOne(hc *http.Client, tg *target, n, v int) error {
	name := fmt.Sprintf("App%05d", n)
	repo, version := strings.ToLower(name), fmt.Sprintf("1.0.%d", v)
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"windows","rootfs":{"type":"layers","diff_ids":[]},"comment":"%s %s"}`, name, version))
	d := digest.FromBytes(cfg)
	if err := tg.upload(hc, repo, d, cfg); err != nil {
		return err
	}
	m, _ := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config:      ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: d, Size: int64(len(cfg))},
		Layers:      []ocispec.Descriptor{},
		Annotations: map[string]string{find.AnnotationTitle: name, find.AnnotationVersion: version, find.AnnotationVendor: "CN=Bench"},
	})
	return tg.send(hc, http.MethodPut, "/v2/"+repo+"/manifests/"+version, ocispec.MediaTypeImageManifest, m, http.StatusCreated)
}

// upload pushes a blob: monolithically in one POST where the registry
// takes it (catalogd), else by a POST and a PUT (the distribution registry
// answers the POST with 202 and a Location).
func (tg *target) upload(hc *http.Client, repo string, d digest.Digest, b []byte) error {
	req, err := http.NewRequest(http.MethodPost, tg.base+"/v2/"+repo+"/blobs/uploads/?digest="+d.String(), bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if tg.user != "" {
		req.SetBasicAuth(tg.user, tg.password)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated:
		return nil
	case http.StatusAccepted:
	default:
		return fmt.Errorf("POST blob upload in %s: %d", repo, resp.StatusCode)
	}
	loc, err := resp.Location()
	if err != nil {
		return err
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	path := loc.RequestURI()
	return tg.send(hc, http.MethodPut, path, "application/octet-stream", b, http.StatusCreated)
}

func (tg *target) send(hc *http.Client, method, path, ctype string, body []byte, want int) error {
	req, err := http.NewRequest(method, tg.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	if tg.user != "" {
		req.SetBasicAuth(tg.user, tg.password)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return nil
}

// measure GETs url n times and returns the latencies and the answer's size.
func measure(hc *http.Client, url string, n int) ([]time.Duration, int, error) {
	return measureWith(hc, url, n, nil)
}

// measureWith is measure with the request header hdr.
func measureWith(hc *http.Client, url string, n int, hdr http.Header) ([]time.Duration, int, error) {
	var lat []time.Duration
	size := 0
	for range n {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return nil, 0, err
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return nil, 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, 0, fmt.Errorf("GET %s: %d %.200s", url, resp.StatusCode, b)
		}
		lat = append(lat, time.Since(start))
		size = len(b)
	}
	return lat, size, nil
}

// pct is the p-th percentile of lat (nearest rank).
func pct(lat []time.Duration, p int) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench find:", err)
	os.Exit(1)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
