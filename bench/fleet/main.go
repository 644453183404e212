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
// collected) and a second wave installs it again on the warm cache; then
// the cache starts over empty and a third wave is staggered, one host
// alone and then the others at once.
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
	if err := harness.WriteReport(report, *out); err != nil {
		fatal(err)
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
	registryVersion     string // as registry --version says it
}

// wave is one fleet installing the image at once: its aggregate rate and
// what catalogd served meanwhile.
type wave struct {
	mbps   float64
	served harness.Served
}

// results are the waves of one fleet size over the rounds.
type results struct {
	direct, cold, warm, staggered []wave
}

func (b *bench) run(size int64, sizes []int) (string, error) {
	if _, err := os.Stat(b.registry); err != nil {
		return "", fmt.Errorf("the distribution registry: %w (bench/run.sh installs it with scripts/install-tools.sh)", err)
	}
	b.registryVersion = registryVersion(b.registry)
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
				fmt.Fprintf(os.Stderr, "    round %d: %d hosts from catalogd: %.0f MB/s, catalogd served %s\n", r+1, n, w.mbps, gib(w.served.BlobBytes))
				return nil
			}
			cached := func() error {
				cold, warm, staggered, err := b.cacheRound(n)
				if err != nil {
					return fmt.Errorf("%d hosts through the cache: %w", n, err)
				}
				res.cold, res.warm, res.staggered = append(res.cold, cold), append(res.warm, warm), append(res.staggered, staggered)
				fmt.Fprintf(os.Stderr, "    round %d: %d hosts through the cache: catalogd served cold %s at %.0f MB/s, warm %s at %.0f MB/s",
					r+1, n, gib(cold.served.BlobBytes), cold.mbps, gib(warm.served.BlobBytes), warm.mbps)
				if n > 1 {
					fmt.Fprintf(os.Stderr, ", staggered %s at %.0f MB/s", gib(staggered.served.BlobBytes), staggered.mbps)
				}
				fmt.Fprintln(os.Stderr)
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

// registryVersion is the version that the registry at bin gives, e.g.
// "distribution v3.1.2", or "version unknown".
func registryVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if f := strings.Fields(string(out)); err == nil && len(f) >= 3 {
		return "distribution " + f[2]
	}
	return "version unknown"
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

// install runs one wave: the hosts of each group install the image at the
// same moment, and a group starts when the one before has ended; the rate
// is the bytes of all the hosts over the time from the first request to
// the last image usable. What catalogd served is read from its log, from
// before the wave to after it.
func (b *bench) install(groups ...[]*host) (wave, error) {
	var w wave
	harness.Settle()
	from, err := harness.SettleLog(b.catURL(), b.catLog, b.logAt, 10*time.Second)
	if err != nil {
		return w, err
	}
	began := time.Now()
	n := 0
	for _, hosts := range groups {
		if err := installAtOnce(hosts); err != nil {
			return w, err
		}
		n += len(hosts)
	}
	w.mbps = harness.MBps(int64(n)*b.imageBytes, time.Since(began))
	if _, err := harness.SettleLog(b.catURL(), b.catLog, from, 10*time.Second); err != nil {
		return w, err
	}
	w.served, b.logAt, err = harness.ServedSince(b.catLog, from)
	return w, err
}

// installAtOnce has every host install the image at the same moment, and
// waits for all of them; the first error is returned.
func installAtOnce(hosts []*host) error {
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
	close(start)
	wg.Wait() // Install gives up after 10 minutes
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("host %d: %w", i+1, err)
		}
	}
	return nil
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
// source's mirror. The hosts install the image at once on the cold cache;
// then remove it (its blobs are collected) and install it at once again,
// on the warm cache. For more than one host, the cache then starts over
// empty, on the same address, and the hosts install the image staggered:
// one alone, then the others at once.
func (b *bench) cacheRound(n int) (cold, warm, staggered wave, err error) {
	addr, err := harness.FreeAddr()
	if err != nil {
		return cold, warm, staggered, err
	}
	stop, err := b.startCache(addr)
	defer func() { stop() }()
	if err != nil {
		return cold, warm, staggered, err
	}
	hosts, err := b.startHosts(n, "catalog="+b.catURL()+",mirror=http://"+addr)
	defer b.stopHosts(hosts)
	if err != nil {
		return cold, warm, staggered, err
	}
	if cold, err = b.install(hosts); err != nil {
		return cold, warm, staggered, fmt.Errorf("cold cache: %w", err)
	}
	if err := removeAll(hosts); err != nil {
		return cold, warm, staggered, err
	}
	if warm, err = b.install(hosts); err != nil {
		return cold, warm, staggered, fmt.Errorf("warm cache: %w", err)
	}
	if n == 1 {
		return cold, warm, staggered, nil
	}
	if err := removeAll(hosts); err != nil {
		return cold, warm, staggered, err
	}
	stop()
	if stop, err = b.startCache(addr); err != nil {
		return cold, warm, staggered, err
	}
	if staggered, err = b.install(hosts[:1], hosts[1:]); err != nil {
		return cold, warm, staggered, fmt.Errorf("staggered, on a cold cache: %w", err)
	}
	return cold, warm, staggered, nil
}

// removeAll removes the image from every host and checks that its blobs
// are collected.
func removeAll(hosts []*host) error {
	for i, h := range hosts {
		if err := harness.RemoveImage(h.hc, hostBase, imageRepo); err != nil {
			return fmt.Errorf("host %d: %w", i+1, err)
		}
		left, err := harness.CountFiles(filepath.Join(h.root, "content", "blobs", "*", "*"))
		if err != nil {
			return err
		}
		if left != 0 {
			return fmt.Errorf("host %d keeps %d blobs after the removal", i+1, left)
		}
	}
	return nil
}

// startCache starts the distribution registry on addr as a pull-through
// cache of catalogd, with catalogd's admin credentials, on a fresh root;
// stop stops it and removes the root.
func (b *bench) startCache(addr string) (stop func(), err error) {
	b.seq++
	dir := filepath.Join(b.work, fmt.Sprintf("cache-%d", b.seq))
	stop = func() { os.RemoveAll(dir) }
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return stop, err
	}
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(cacheConfig(filepath.Join(dir, "data"), addr, b.catURL(), b.catUser, b.catPass)), 0o600); err != nil {
		return stop, err
	}
	cmd, err := b.procs.Start(b.registry, []string{"OTEL_SDK_DISABLED=true"}, "serve", cfg)
	if err != nil {
		return stop, err
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			b.procs.Stop(cmd.Process.Pid)
			os.RemoveAll(dir)
		}
	}
	return stop, harness.WaitReady("http://" + addr + "/v2/")
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
	fmt.Fprintf(&sb, "N providerd hosts on this machine, each with its own root, install the same image (one layer of %s of random bytes; %d bytes with its config) through API v1 on each host's unix socket. ", harness.Human(size), b.imageBytes)
	fmt.Fprintf(&sb, "**Directly**: the source is catalogd, and the N hosts install at the same moment. ")
	fmt.Fprintf(&sb, "**Through the cache**: the source is catalogd with the CNCF distribution registry (%s, proxy mode, with catalogd's credentials) as its mirror, so every blob is asked of the cache first. Each round starts a fresh cache: ", b.registryVersion)
	fmt.Fprintf(&sb, "**cold**, the N hosts install at the same moment on the empty cache; **warm**, the image is removed from every host (its blobs collected) and the N install it again at once; **staggered**, the cache starts over empty and one host installs alone, then the N−1 others at once (for N > 1).\n\n")
	fmt.Fprintf(&sb, "MB/s is aggregate: N × the image's bytes over the wall time from the first install request to the last image usable (its job done: every blob verified, fsynced, recorded), 10^6 bytes per second. ")
	fmt.Fprintf(&sb, "Upstream is the blob bytes catalogd served in the wave, in GiB: the sum of the `bytes` field of its request log's lines of blob GETs answered 200 or 206, read once a marker request of the bench shows in the log (so every line of the wave is written); × is that over the image's bytes.\n\n")
	fmt.Fprintf(&sb, "Medians of %d round(s) in one run; each round runs every fleet size, directly and through the cache in turn (which goes first alternates), each wave after a sync(2), on fresh roots removed after the round. All hosts, catalogd and the cache share this machine's %d CPUs and its disk, so the aggregate rate is the machine's, not a network's. The load averages (1, 5, 15 min) were %s before the rounds and %s after them (the bench's own processes included).\n\n", b.runs, runtime.NumCPU(), b.loadStart, b.loadEnd)
	fmt.Fprintf(&sb, "Why cold costs N×: the registry keeps a map of the blobs it is fetching, and a request for a blob in that map is streamed from the upstream by a GET of its own, neither cached nor held until the first fetch commits (registry/proxy/proxyblobstore.go, ServeBlob). So the cache saves catalogd the bytes of the hosts that ask after the first fetch of a blob has committed: the warm and staggered waves.\n\n")
	fmt.Fprintf(&sb, "| hosts | directly MB/s | upstream | × | cold MB/s | upstream | × | warm MB/s | upstream | × | staggered MB/s | upstream | × |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range sizes {
		r := all[n]
		fmt.Fprintf(&sb, "| %d | %s | %s | %s | %s |\n", n, b.cells(r.direct), b.cells(r.cold), b.cells(r.warm), b.cells(r.staggered))
	}
	fmt.Fprintf(&sb, "\nBlob GETs catalogd answered per wave, each round (directly / cold / warm / staggered):\n\n")
	for _, n := range sizes {
		r := all[n]
		var rounds []string
		for i := range r.direct {
			st := "—"
			if n > 1 {
				st = strconv.Itoa(r.staggered[i].served.BlobGets)
			}
			rounds = append(rounds, fmt.Sprintf("%d / %d / %d / %s", r.direct[i].served.BlobGets, r.cold[i].served.BlobGets, r.warm[i].served.BlobGets, st))
		}
		fmt.Fprintf(&sb, "- %d host(s): %s\n", n, strings.Join(rounds, "; "))
	}
	return sb.String()
}

// cells are the three cells of a kind of wave in the table: the median
// rate, the median upstream bytes, and those over the image's bytes; dashes
// for a wave that was not run (staggered, for one host).
func (b *bench) cells(ws []wave) string {
	if len(ws) == 0 || ws[0].mbps == 0 {
		return "— | — | —"
	}
	m := medians(ws)
	return fmt.Sprintf("%.0f | %s | %.2f", m.mbps, gib(m.bytes), float64(m.bytes)/float64(b.imageBytes))
}

// gib formats a byte count in GiB.
func gib(n int64) string { return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30)) }

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
