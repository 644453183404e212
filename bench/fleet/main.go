// Command fleet measures a fleet of providerd hosts installing the same
// image at once: directly from catalogd, and through a pull-through cache
// of catalogd (the CNCF distribution registry in proxy mode) set as the
// source's mirror. For each fleet size it reports the aggregate rate (N
// times the image's bytes over the wall time from the first install
// request to the last image usable) and the blob bytes catalogd served,
// read from its request log.
//
// Each round, for each fleet size, starts N fresh providerd roots and, for
// the cache, a fresh cache: its first wave is on a cold cache (every blob
// a miss), then the image is removed from every host (its blobs
// collected) and a second wave installs it again on the warm cache.
//
// It is run by `make bench` (bench/run.sh, BENCH=fleet). Every server
// listens on 127.0.0.1. Figures are medians of --runs rounds.
package main

import (
	"archive/tar"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/bench/harness"
)

// The image every host installs.
const (
	imageRepo    = "bench/fleet"
	imageVersion = "1.0.0.0"
)

func main() {
	var (
		binDir   = flag.String("bin", "bin", "directory holding catalogd and providerd")
		toolsDir = flag.String("tools", ".tools/bin", "directory holding the distribution registry (registry)")
		sizeStr  = flag.String("size", "1GiB", "bytes of the image's one layer")
		runs     = flag.Int("runs", 3, "rounds; the median is reported")
		hostsStr = flag.String("hosts", "1,2,4,8", "fleet sizes, comma-separated")
		out      = flag.String("out", "", "write the Markdown report here too")
	)
	flag.Parse()
	size, err := harness.ParseSize(*sizeStr)
	if err != nil {
		fatal(err)
	}
	var sizes []int
	for _, f := range strings.Split(*hostsStr, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 64 {
			fatal(fmt.Errorf("bad fleet size %q in --hosts (1 to 64)", f))
		}
		sizes = append(sizes, n)
	}
	if *runs < 1 {
		fatal(fmt.Errorf("--runs %d: at least 1", *runs))
	}
	work, err := os.MkdirTemp("", "cp-bench-fleet-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(work)
	b := &bench{bin: *binDir, registry: filepath.Join(*toolsDir, "registry"), work: work, runs: *runs}
	b.procs.LogDir = work
	report, err := b.run(size, sizes)
	b.procs.StopAll()
	if err != nil {
		fatal(err)
	}
	fmt.Print(report)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
			fatal(err)
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "fleet bench:", err)
	os.Exit(1)
}

type bench struct {
	bin, registry, work string
	runs                int
	procs               harness.Procs
	catAddr             string
	catUser, catPass    string
	catLog              string
	logAt               int64 // how far catalogd's log has been read
	imageBytes          int64 // config and layer
	token               string
	tokenFile           string
	seq                 int // names the directories of hosts and caches
	loadStart, loadEnd  string
}

// wave is one fleet installing the image at once: its aggregate rate and
// what catalogd served meanwhile.
type wave struct {
	mbps   float64
	served harness.Served
}

// results are the waves of one fleet size over the rounds.
type results struct {
	direct, cold, warm []wave
}

func (b *bench) run(size int64, sizes []int) (string, error) {
	if _, err := os.Stat(b.registry); err != nil {
		return "", fmt.Errorf("the distribution registry: %w (bench/run.sh installs it with scripts/install-tools.sh)", err)
	}
	if err := b.reportDisk(); err != nil {
		return "", err
	}
	catRoot := filepath.Join(b.work, "catalogd")
	harness.Step("generating and publishing %s:%s (one layer of %s)", imageRepo, imageVersion, harness.Human(size))
	layer := filepath.Join(b.work, "layer.tar")
	if err := writeLayer(layer, size); err != nil {
		return "", err
	}
	if err := harness.Run(nil, filepath.Join(b.bin, "catalogd"), "publish", "--root", catRoot, "--name", imageRepo,
		"--version", imageVersion, "--publisher", "Bench", "--layer", layer); err != nil {
		return "", err
	}
	os.Remove(layer) // catalogd has its own copy
	if err := harness.WarmStore(filepath.Join(catRoot, "content")); err != nil {
		return "", err
	}
	var err error
	if b.catAddr, err = harness.FreeAddr(); err != nil {
		return "", err
	}
	b.catLog = filepath.Join(b.work, "catalogd.log")
	if _, err := b.procs.Start(filepath.Join(b.bin, "catalogd"), nil, "serve", "--root", catRoot, "--listen", b.catAddr, "--log-format", "json"); err != nil {
		return "", err
	}
	if err := harness.WaitReady(b.catURL() + "/healthz"); err != nil {
		return "", err
	}
	pw, err := os.ReadFile(filepath.Join(catRoot, "auth", "admin-password"))
	if err != nil {
		return "", fmt.Errorf("catalogd's admin password, for the cache: %w", err)
	}
	b.catUser, b.catPass = "admin", strings.TrimSpace(string(pw))
	if b.imageBytes, err = b.blobBytes(); err != nil {
		return "", err
	}
	b.tokenFile = filepath.Join(b.work, "token")
	if b.token, err = harness.WriteToken(b.tokenFile); err != nil {
		return "", err
	}

	b.loadStart = loadAverage()
	all := make(map[int]*results)
	for _, n := range sizes {
		all[n] = &results{}
	}
	for r := range b.runs {
		for _, n := range sizes {
			res := all[n]
			direct := func() error {
				w, err := b.directRound(n)
				if err != nil {
					return fmt.Errorf("%d hosts from catalogd: %w", n, err)
				}
				res.direct = append(res.direct, w)
				fmt.Fprintf(os.Stderr, "    round %d: %d hosts from catalogd: %.0f MB/s, catalogd served %s\n", r+1, n, w.mbps, harness.Human(w.served.BlobBytes))
				return nil
			}
			cached := func() error {
				cold, warm, err := b.cacheRound(n)
				if err != nil {
					return fmt.Errorf("%d hosts through the cache: %w", n, err)
				}
				res.cold, res.warm = append(res.cold, cold), append(res.warm, warm)
				fmt.Fprintf(os.Stderr, "    round %d: %d hosts through the cache: cold %.0f MB/s, catalogd served %s; warm %.0f MB/s, catalogd served %s\n",
					r+1, n, cold.mbps, harness.Human(cold.served.BlobBytes), warm.mbps, harness.Human(warm.served.BlobBytes))
				return nil
			}
			// Alternate which goes first, so that neither always
			// meets the other's writeback or freed pages.
			steps := []func() error{direct, cached}
			if r%2 == 1 {
				steps[0], steps[1] = steps[1], steps[0]
			}
			for _, step := range steps {
				if err := step(); err != nil {
					return "", err
				}
			}
		}
	}
	b.loadEnd = loadAverage()
	return b.report(size, sizes, all), nil
}

// loadAverage is the machine's load averages over 1, 5 and 15 minutes,
// as /proc/loadavg gives them, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func (b *bench) catURL() string { return "http://" + b.catAddr }

// reportDisk prints the space left where the hosts' roots go: a round of
// 8 hosts needs 8 times the image, and the cache once more.
func (b *bench) reportDisk() error {
	out, err := exec.Command("df", "-h", b.work).CombinedOutput()
	if err != nil {
		return fmt.Errorf("df -h %s: %w\n%s", b.work, err, out)
	}
	harness.Step("disk space where the roots go:\n%s", strings.TrimSpace(string(out)))
	return nil
}

// blobBytes reads the image's manifest from catalogd: the bytes of its
// config and layers.
func (b *bench) blobBytes() (int64, error) {
	req, err := http.NewRequest(http.MethodGet, b.catURL()+"/v2/"+imageRepo+"/manifests/"+imageVersion, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("the manifest of %s:%s: %s", imageRepo, imageVersion, resp.Status)
	}
	var m ocispec.Manifest
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&m); err != nil {
		return 0, err
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// host is a providerd of the fleet.
type host struct {
	pid  int
	root string
	run  string
	hc   *http.Client // its API v1, over its unix socket
}

const hostBase = "http://providerd"

// startHosts starts n providerd with fresh roots and the source src, and
// waits until each has a whole index of it.
func (b *bench) startHosts(n int, src string) ([]*host, error) {
	var hosts []*host
	for range n {
		b.seq++
		h := &host{root: filepath.Join(b.work, fmt.Sprintf("host-%d", b.seq)), run: filepath.Join(b.work, fmt.Sprintf("run-%d", b.seq))}
		addr, err := harness.FreeAddr()
		if err != nil {
			return hosts, err
		}
		cmd, err := b.procs.Start(filepath.Join(b.bin, "providerd"), nil, "serve", "--root", h.root, "--run-dir", h.run,
			"--listen", addr, "--token-file", b.tokenFile, "--source", src)
		if err != nil {
			return hosts, err
		}
		h.pid = cmd.Process.Pid
		h.hc = harness.UnixClient(filepath.Join(h.run, "providerd.sock"))
		hosts = append(hosts, h)
	}
	for i, h := range hosts {
		if err := harness.WaitFor(fmt.Sprintf("the index of host %d", i+1), time.Minute, h.synced); err != nil {
			return hosts, err
		}
	}
	return hosts, nil
}

// synced says whether the host's index of the source catalog is whole.
func (h *host) synced() error {
	resp, err := h.hc.Get(hostBase + "/v1/sources")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var sr api.SourcesResponse
	if err := json.NewDecoder(resp.Body).Decode(&sr); err != nil {
		return err
	}
	for _, s := range sr.Sources {
		if s.Name == "catalog" && s.Status != nil && s.Status.Complete {
			return nil
		}
	}
	return fmt.Errorf("not synced yet")
}

// stopHosts stops the hosts and removes their roots.
func (b *bench) stopHosts(hosts []*host) {
	for _, h := range hosts {
		b.procs.Stop(h.pid)
		os.RemoveAll(h.root)
		os.RemoveAll(h.run)
	}
}

// install runs one wave: every host installs the image at the same moment;
// the rate is the hosts' bytes over the time from the start to the last
// image usable. What catalogd served is read from its log, from before
// the wave to after it.
func (b *bench) install(hosts []*host) (wave, error) {
	var w wave
	harness.Settle()
	from, err := harness.SettleLog(b.catURL(), b.catLog, b.logAt, 10*time.Second)
	if err != nil {
		return w, err
	}
	errs := make([]error, len(hosts))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() {
			<-start
			_, errs[i] = harness.Install(h.hc, hostBase, api.InstallRequest{Name: imageRepo,
				VersionOptions: api.VersionOptions{RequiredVersion: imageVersion}})
		})
	}
	began := time.Now()
	close(start)
	wg.Wait() // Install gives up after 10 minutes
	took := time.Since(began)
	for i, err := range errs {
		if err != nil {
			return w, fmt.Errorf("host %d: %w", i+1, err)
		}
	}
	w.mbps = harness.MBps(int64(len(hosts))*b.imageBytes, took)
	if _, err := harness.SettleLog(b.catURL(), b.catLog, from, 10*time.Second); err != nil {
		return w, err
	}
	w.served, b.logAt, err = harness.ServedSince(b.catLog, from)
	return w, err
}

// directRound installs the image on n fresh hosts at once from catalogd.
func (b *bench) directRound(n int) (wave, error) {
	hosts, err := b.startHosts(n, "catalog="+b.catURL())
	defer b.stopHosts(hosts)
	if err != nil {
		return wave{}, err
	}
	return b.install(hosts)
}

// cacheRound starts a fresh cache and n fresh hosts with it as the
// source's mirror; the hosts install the image at once on the cold cache,
// then remove it (its blobs are collected) and install it at once again,
// on the warm cache.
func (b *bench) cacheRound(n int) (cold, warm wave, err error) {
	cache, stop, err := b.startCache()
	defer stop()
	if err != nil {
		return cold, warm, err
	}
	hosts, err := b.startHosts(n, "catalog="+b.catURL()+",mirror="+cache)
	defer b.stopHosts(hosts)
	if err != nil {
		return cold, warm, err
	}
	if cold, err = b.install(hosts); err != nil {
		return cold, warm, fmt.Errorf("cold cache: %w", err)
	}
	for i, h := range hosts {
		if err := harness.RemoveImage(h.hc, hostBase, imageRepo); err != nil {
			return cold, warm, fmt.Errorf("host %d: %w", i+1, err)
		}
		left, err := harness.CountFiles(filepath.Join(h.root, "content", "blobs", "*", "*"))
		if err != nil {
			return cold, warm, err
		}
		if left != 0 {
			return cold, warm, fmt.Errorf("host %d keeps %d blobs after the removal", i+1, left)
		}
	}
	if warm, err = b.install(hosts); err != nil {
		return cold, warm, fmt.Errorf("warm cache: %w", err)
	}
	return cold, warm, nil
}

// startCache starts the distribution registry as a pull-through cache of
// catalogd, with catalogd's admin credentials, on a fresh root; stop
// stops it and removes the root.
func (b *bench) startCache() (url string, stop func(), err error) {
	b.seq++
	dir := filepath.Join(b.work, fmt.Sprintf("cache-%d", b.seq))
	stop = func() { os.RemoveAll(dir) }
	addr, err := harness.FreeAddr()
	if err != nil {
		return "", stop, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", stop, err
	}
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(cacheConfig(filepath.Join(dir, "data"), addr, b.catURL(), b.catUser, b.catPass)), 0o600); err != nil {
		return "", stop, err
	}
	cmd, err := b.procs.Start(b.registry, []string{"OTEL_SDK_DISABLED=true"}, "serve", cfg)
	if err != nil {
		return "", stop, err
	}
	stop = func() {
		b.procs.Stop(cmd.Process.Pid)
		os.RemoveAll(dir)
	}
	url = "http://" + addr
	return url, stop, harness.WaitReady(url + "/v2/")
}

// cacheConfig is the registry's configuration: filesystem storage under
// root, plain HTTP on addr, errors only in its log, and a proxy of
// remote with user and password.
func cacheConfig(root, addr, remote, user, password string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
proxy:
  remoteurl: %s
  username: %s
  password: %s
`, yamlString(root), addr, yamlString(remote), yamlString(user), yamlString(password))
}

// yamlString quotes s for YAML: a JSON string is a YAML double-quoted
// scalar.
func yamlString(s string) string {
	q, _ := json.Marshal(s) // a string always marshals
	return string(q)
}

// report is the Markdown report.
func (b *bench) report(size int64, sizes []int, all map[int]*results) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "# A fleet installing one %s image, directly and through a pull-through cache (%s)\n\n", harness.Human(size), time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&sb, "N providerd hosts on this machine, each with its own root, install the same image (one layer of %s of random bytes, %s with its config) at the same moment, through API v1 on each host's unix socket. ", harness.Human(size), harness.Human(b.imageBytes))
	fmt.Fprintf(&sb, "**Directly**: the source is catalogd. **Through the cache**: the source is catalogd with the CNCF distribution registry (v3, proxy mode, catalogd's credentials) as its mirror, so every blob is asked of the cache first; each round starts a fresh cache, whose first wave (**cold**) finds it empty, then the image is removed from every host (blobs collected) and a second wave (**warm**) installs it again.\n\n")
	fmt.Fprintf(&sb, "MB/s is aggregate: N × %d bytes (config and layer) over the wall time from the first install request to the last image usable (its job done: every blob verified, fsynced, recorded), 10^6 bytes per second. ", b.imageBytes)
	fmt.Fprintf(&sb, "Upstream is the blob bytes catalogd served in the wave, the sum of the `bytes` of its request log's GET lines of blobs (200 or 206), after a marker request shows every line of the wave written; × image is that over the image's bytes.\n\n")
	fmt.Fprintf(&sb, "Medians of %d round(s) in one run; each round runs every fleet size, directly and through the cache in turn (which goes first alternates), each wave after a sync(2), on fresh roots removed after the round. All hosts, catalogd and the cache share this machine's CPUs and disk, so the aggregate rate is the machine's, not a network's. The machine has %d CPUs; its load averages (1, 5, 15 min) were %s at the start of the rounds and %s at their end.\n\n", b.runs, runtime.NumCPU(), b.loadStart, b.loadEnd)
	fmt.Fprintf(&sb, "| hosts | directly MB/s | directly upstream | × image | cache cold MB/s | cold upstream | × image | cache warm MB/s | warm upstream | × image |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range sizes {
		r := all[n]
		d, c, w := medians(r.direct), medians(r.cold), medians(r.warm)
		fmt.Fprintf(&sb, "| %d | %.0f | %s | %.2f | %.0f | %s | %.2f | %.0f | %s | %.2f |\n", n,
			d.mbps, harness.Human(d.bytes), float64(d.bytes)/float64(b.imageBytes),
			c.mbps, harness.Human(c.bytes), float64(c.bytes)/float64(b.imageBytes),
			w.mbps, harness.Human(w.bytes), float64(w.bytes)/float64(b.imageBytes))
	}
	fmt.Fprintf(&sb, "\nBlob GETs catalogd answered per wave, every round (directly / cold / warm):\n\n")
	for _, n := range sizes {
		r := all[n]
		var rounds []string
		for i := range r.direct {
			rounds = append(rounds, fmt.Sprintf("%d / %d / %d", r.direct[i].served.BlobGets, r.cold[i].served.BlobGets, r.warm[i].served.BlobGets))
		}
		fmt.Fprintf(&sb, "- hosts %d: %s\n", n, strings.Join(rounds, "; "))
	}
	return sb.String()
}

// median is the medians of a fleet size's waves.
type median struct {
	mbps  float64
	bytes int64
}

func medians(ws []wave) median {
	var rates, bytes []float64
	for _, w := range ws {
		rates = append(rates, w.mbps)
		bytes = append(bytes, float64(w.served.BlobBytes))
	}
	return median{mbps: harness.MedianOf(rates), bytes: int64(harness.MedianOf(bytes))}
}

// writeLayer writes an uncompressed layer tar of about size bytes: one
// file of pseudo-random (incompressible) bytes.
func writeLayer(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	payload := max(size-3*512, 0) // header and end-of-archive blocks
	if err := tw.WriteHeader(&tar.Header{Name: "Files/data.bin", Mode: 0o644, Size: payload, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	var key [32]byte
	key[0] = 'f'
	if _, err := io.CopyN(tw, rand.NewChaCha8(key), payload); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
