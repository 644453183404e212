// Command blobserve measures how fast catalogd serves one large blob to 1 and
// to N concurrent clients, next to the CNCF distribution registry serving the
// same blob on the same machine in the same run, and next to the machine's
// floor: sha256 over the same bytes and a synced write of them.
//
// It is run by `make bench` (bench/run.sh), which builds catalogd and
// installs crane and the registry first. Every server listens on 127.0.0.1.
// Figures are medians of --runs runs; the report goes to stdout and to
// --out as Markdown.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerprovider/containerprovider/bench/harness"
)

func main() {
	var (
		binDir   = flag.String("bin", "bin", "directory holding catalogd")
		toolsDir = flag.String("tools", ".tools/bin", "directory holding crane and registry")
		sizeStr  = flag.String("size", "1GiB", "size of the blob")
		runs     = flag.Int("runs", 5, "runs per measurement; the median is reported")
		clients  = flag.String("clients", "1,8", "comma-separated concurrent client counts")
		out      = flag.String("out", "", "write the Markdown report here too")
		work     = flag.String("work", "", "scratch directory (default: a new temporary one, removed at the end)")
	)
	flag.Parse()
	size, err := harness.ParseSize(*sizeStr)
	if err != nil {
		fatal(err)
	}
	var counts []int
	for _, s := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 64 {
			fatal(fmt.Errorf("bad --clients %q", *clients))
		}
		counts = append(counts, n)
	}
	if *work == "" {
		d, err := os.MkdirTemp("", "cp-bench-")
		if err != nil {
			fatal(err)
		}
		defer os.RemoveAll(d)
		*work = d
	}
	b := &bench{bin: *binDir, tools: *toolsDir, work: *work, size: size, runs: *runs}
	b.procs.LogDir = *work
	report, err := b.run(counts)
	if err != nil {
		b.procs.StopAll()
		fatal(err)
	}
	b.procs.StopAll()
	if err := harness.WriteReport(report, *out); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "blobserve:", err)
	os.Exit(1)
}

type bench struct {
	bin, tools, work string
	size             int64
	runs             int
	procs            harness.Procs
}

func (b *bench) run(counts []int) (string, error) {
	catRoot := filepath.Join(b.work, "catalogd")
	harness.Step("seeding catalogd with a %s base layer, uncompressed", harness.Human(b.size))
	if err := harness.Run(nil, filepath.Join(b.bin, "catalogd"), "seed", "--root", catRoot,
		"--base-layer-size", strconv.FormatInt(b.size, 10), "--compression", "none"); err != nil {
		return "", err
	}
	catAddr, err := harness.FreeAddr()
	if err != nil {
		return "", err
	}
	if _, err := b.procs.Start(filepath.Join(b.bin, "catalogd"), nil, "serve", "--root", catRoot, "--listen", catAddr); err != nil {
		return "", err
	}
	if err := harness.WaitReady("http://" + catAddr + "/healthz"); err != nil {
		return "", err
	}
	repo, layer, err := biggestLayer(catAddr, "nanoserver", "10.0.14393.0")
	if err != nil {
		return "", err
	}
	// catalogd keeps its content store in <root>/content.
	blobPath := filepath.Join(catRoot, "content", "blobs", "sha256", strings.TrimPrefix(layer.Digest, "sha256:"))
	harness.Step("blob %s, %s", layer.Digest, harness.Human(layer.Size))

	regAddr, err := harness.FreeAddr()
	if err != nil {
		return "", err
	}
	regRoot := filepath.Join(b.work, "registry")
	cfg := filepath.Join(b.work, "registry.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(
		"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n",
		regRoot, regAddr)), 0o644); err != nil {
		return "", err
	}
	if _, err := b.procs.Start(filepath.Join(b.tools, "registry"), []string{"OTEL_SDK_DISABLED=true"}, "serve", cfg); err != nil {
		return "", err
	}
	if err := harness.WaitReady("http://" + regAddr + "/v2/"); err != nil {
		return "", err
	}
	harness.Step("pushing the image to the distribution registry with crane")
	if err := harness.Run([]string{"HOME=" + b.work, "DOCKER_CONFIG=" + filepath.Join(b.work, ".docker")}, filepath.Join(b.tools, "crane"), "copy", "--insecure",
		catAddr+"/"+repo+":10.0.14393.0", regAddr+"/"+repo+":10.0.14393.0"); err != nil {
		return "", err
	}

	if err := harness.WarmStore(filepath.Join(catRoot, "content")); err != nil {
		return "", err
	}
	servers := []struct{ name, url string }{
		{"catalogd", "http://" + catAddr + "/v2/" + repo + "/blobs/" + layer.Digest},
		{"distribution registry v3.1.2", "http://" + regAddr + "/v2/" + repo + "/blobs/" + layer.Digest},
	}
	// One round: the two floors, then each server at each client count.
	fs := []harness.Contender{
		{Name: "sha256", Run: func() (float64, error) { return harness.HashFiles(blobPath) }},
		{Name: "synced write", Run: func() (float64, error) { return harness.SyncedCopy(b.work, blobPath) }},
	}
	for _, s := range servers {
		for _, n := range counts {
			fs = append(fs, harness.Contender{
				Name: fmt.Sprintf("%s, %d client(s)", s.name, n),
				Run:  func() (float64, error) { return fetch(s.url, n, layer.Size) },
			})
		}
	}
	harness.Step("%d rounds of the floors (sha256, synced write) and of each server at %v client(s)", b.runs, counts)
	m, err := harness.Rounds(b.runs, fs...)
	if err != nil {
		return "", err
	}
	sha, wr := m[0], m[1]
	rows := []row{{"sha256 of the blob (page cache)", 1, sha}, {"synced write of the blob", 1, wr}}
	results := map[string]map[int]float64{}
	i := 2
	for _, s := range servers {
		results[s.name] = map[int]float64{}
		for _, n := range counts {
			results[s.name][n] = m[i]
			rows = append(rows, row{"GET blob from " + s.name, n, m[i]})
			i++
		}
	}

	var sb strings.Builder
	fmt.Fprintf(&sb, "# Serving one %s blob (%s)\n\n", harness.Human(layer.Size), time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&sb, "Medians of %d rounds on this machine, all in one run; each round runs every measurement once, so that all of them meet the same drift of the machine; MB/s is 10^6 bytes per second, aggregate over the clients.\n\n", b.runs)
	fmt.Fprintf(&sb, "| measurement | clients | MB/s |\n|---|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&sb, "| %s | %d | %.0f |\n", r.name, r.clients, r.mbps)
	}
	fmt.Fprintf(&sb, "\n| ratio | clients | value |\n|---|---:|---:|\n")
	for _, n := range counts {
		c, r := results["catalogd"][n], results["distribution registry v3.1.2"][n]
		fmt.Fprintf(&sb, "| catalogd / distribution registry | %d | %.2f |\n", n, c/r)
		fmt.Fprintf(&sb, "| catalogd / sha256 floor | %d | %.2f |\n", n, c/sha)
		fmt.Fprintf(&sb, "| catalogd / synced-write floor | %d | %.2f |\n", n, c/wr)
	}
	return sb.String(), nil
}

type row struct {
	name    string
	clients int
	mbps    float64
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// biggestLayer reads a manifest from catalogd and returns its largest layer.
func biggestLayer(addr, repo, tag string) (string, descriptor, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", descriptor{}, err
	}
	defer resp.Body.Close()
	var m struct {
		Layers []descriptor `json:"layers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return "", descriptor{}, err
	}
	if len(m.Layers) == 0 {
		return "", descriptor{}, errors.New("manifest has no layers")
	}
	sort.Slice(m.Layers, func(i, j int) bool { return m.Layers[i].Size > m.Layers[j].Size })
	return repo, m.Layers[0], nil
}

// fetch downloads url with n concurrent clients and returns the aggregate
// rate in MB/s.
func fetch(url string, n int, size int64) (float64, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Minute}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := func() error {
				resp, err := client.Get(url)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("GET %s: %s", url, resp.Status)
				}
				got, err := io.Copy(io.Discard, resp.Body)
				if err == nil && got != size {
					err = fmt.Errorf("GET %s: %d bytes, want %d", url, got, size)
				}
				return err
			}()
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return 0, first
	}
	return float64(size) * float64(n) / time.Since(start).Seconds() / 1e6, nil
}
