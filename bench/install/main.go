// Command install measures how fast providerd installs a 1 GiB image from
// catalogd, next to crane and skopeo pulling the same image from the same
// catalogd in the same run, and next to the machine's floor: sha256 over the
// same bytes, a synced write of them, and a direct write of them (O_DIRECT,
// as providerd's store writes, then fsync: the disk's bound). It also
// reports providerd's peak RSS, and with --profile where its CPU time goes.
//
// Two images are measured: one with a single 1 GiB layer, and one whose four
// 256 MiB layers come from a chain of four images (each built on the one
// before, as application images are built on a base OS image), which
// providerd installs parents first with parallel downloads.
//
// It is run by `make bench` (bench/run.sh). Every server listens on
// 127.0.0.1. Figures are medians of --runs runs.
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/bench/harness"
)

// image is one benchmark image and the chain of images it is built on.
type image struct {
	label  string
	chain  []string // repositories, base first; the last one is installed
	layers []string // the layer files, base first
	size   int64    // bytes of all layers
}

func main() {
	var (
		binDir   = flag.String("bin", "bin", "directory holding catalogd and providerd")
		toolsDir = flag.String("tools", ".tools/bin", "directory holding crane")
		sizeStr  = flag.String("size", "1GiB", "total layer bytes of each image")
		runs     = flag.Int("runs", 5, "runs per measurement; the median is reported")
		out      = flag.String("out", "", "write the Markdown report here too")
		profile  = flag.String("profile", "", "after the rounds, install each image once more under perf record and write the recordings and their report to this directory")
	)
	flag.Parse()
	size, err := harness.ParseSize(*sizeStr)
	if err != nil {
		fatal(err)
	}
	work, err := os.MkdirTemp("", "cp-bench-install-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(work)
	b := &bench{bin: *binDir, tools: *toolsDir, work: work, runs: *runs, profile: *profile}
	b.procs.LogDir = work
	report, err := b.run(size)
	b.procs.StopAll()
	if err != nil {
		fatal(err)
	}
	if err := harness.WriteReport(report, *out); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "install bench:", err)
	os.Exit(1)
}

type bench struct {
	bin, tools, work string
	runs             int
	// profile is where the perf recordings go; empty for none.
	profile  string
	procs    harness.Procs
	catAddr  string
	provAddr string
	// token is providerd's bearer token, which hc sends.
	token string
	hc    *http.Client
}

// bearer sends a bearer token with every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (t bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.token)
	return t.next.RoundTrip(r)
}

func (b *bench) run(size int64) (string, error) {
	skopeo, _ := exec.LookPath("skopeo")
	catRoot := filepath.Join(b.work, "catalogd")
	single := &image{label: "1 layer of " + harness.Human(size), chain: []string{"bench/single"}}
	four := &image{label: "4 layers of " + harness.Human(size/4), chain: []string{"bench/four-1", "bench/four-2", "bench/four-3", "bench/four-4"}}
	harness.Step("generating and publishing the images (%s each)", harness.Human(size))
	for i, img := range []*image{single, four} {
		per := size / int64(len(img.chain))
		for j, repo := range img.chain {
			layer := filepath.Join(b.work, fmt.Sprintf("layer-%d-%d.tar", i, j))
			if err := writeLayer(layer, per, uint64(i*10+j)); err != nil {
				return "", err
			}
			args := []string{"publish", "--root", catRoot, "--name", repo, "--version", "1.0.0.0", "--publisher", "Bench", "--layer", layer}
			if j > 0 {
				args = append(args, "--parent", img.chain[j-1]+":1.0.0.0")
			}
			if err := harness.Run(nil, filepath.Join(b.bin, "catalogd"), args...); err != nil {
				return "", err
			}
			img.layers = append(img.layers, layer)
			fi, _ := os.Stat(layer)
			img.size += fi.Size()
		}
	}

	if err := harness.WarmStore(filepath.Join(catRoot, "content")); err != nil {
		return "", err
	}
	var err error
	if b.catAddr, err = harness.FreeAddr(); err != nil {
		return "", err
	}
	cat, err := b.procs.Start(filepath.Join(b.bin, "catalogd"), nil, "serve", "--root", catRoot, "--listen", b.catAddr)
	if err != nil {
		return "", err
	}
	if err := harness.WaitReady("http://" + b.catAddr + "/healthz"); err != nil {
		return "", err
	}
	if b.provAddr, err = harness.FreeAddr(); err != nil {
		return "", err
	}
	tokenFile := filepath.Join(b.work, "token")
	if b.token, err = harness.WriteToken(tokenFile); err != nil {
		return "", err
	}
	// The API over the unix socket: a save or load of a path on the
	// daemon's host is honoured there only (the TCP listener, with the
	// token, serves the health check and cimage).
	sock := filepath.Join(b.work, "run", "providerd.sock")
	b.hc = harness.UnixClient(sock)
	tcp := &http.Client{Transport: bearer{b.token, http.DefaultTransport}}
	prov, err := b.procs.Start(filepath.Join(b.bin, "providerd"), nil, "serve", "--root", filepath.Join(b.work, "providerd"),
		"--run-dir", filepath.Join(b.work, "run"), "--listen", b.provAddr, "--token-file", tokenFile, "--source", "catalog=http://"+b.catAddr)
	if err != nil {
		return "", err
	}
	if err := harness.WaitFor("providerd", 30*time.Second, func() error {
		resp, err := tcp.Get("http://" + b.provAddr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: %s", resp.Status)
		}
		return nil
	}); err != nil {
		return "", err
	}

	type result struct {
		img                            *image
		prov, crane, skopeo, sha, sync float64
		direct                         float64
	}
	var results []result
	var profiles []string
	for _, img := range []*image{single, four} {
		r := result{img: img}
		last := img.chain[len(img.chain)-1]
		crane := func() (float64, error) {
			dir := filepath.Join(b.work, "crane-out")
			defer os.RemoveAll(dir)
			return timed(img.size, func() error {
				return harness.Run([]string{"HOME=" + b.work}, filepath.Join(b.tools, "crane"), "pull", "--insecure", "--format", "oci", b.catAddr+"/"+last+":1.0.0.0", dir)
			})
		}
		skopeoCopy := func() (float64, error) {
			if skopeo == "" {
				return 0, nil
			}
			dir := filepath.Join(b.work, "skopeo-out")
			defer os.RemoveAll(dir)
			return timed(img.size, func() error {
				return harness.Run([]string{"HOME=" + b.work}, skopeo, "copy", "--src-tls-verify=false",
					"docker://"+b.catAddr+"/"+last+":1.0.0.0", "oci:"+dir+":1.0.0.0")
			})
		}
		harness.Step("%s: %d rounds of providerd install, crane pull, skopeo copy, sha256, synced write and direct write", img.label, b.runs)
		m, err := harness.Rounds(b.runs,
			harness.Contender{Name: "providerd install", Run: func() (float64, error) { return b.install(img) }},
			harness.Contender{Name: "crane pull", Run: crane},
			harness.Contender{Name: "skopeo copy", Run: skopeoCopy},
			harness.Contender{Name: "sha256", Run: func() (float64, error) { return harness.HashFiles(img.layers...) }},
			harness.Contender{Name: "synced write", Run: func() (float64, error) { return harness.SyncedCopy(b.work, img.layers...) }},
			harness.Contender{Name: "direct write", Run: func() (float64, error) { return harness.DirectWrite(b.work, img.layers...) }},
		)
		if err != nil {
			return "", err
		}
		r.prov, r.crane, r.skopeo, r.sha, r.sync, r.direct = m[0], m[1], m[2], m[3], m[4], m[5]
		results = append(results, r)
		if b.profile != "" {
			p, err := b.profiled(img, prov.Process.Pid, cat.Process.Pid)
			if err != nil {
				return "", err
			}
			profiles = append(profiles, p)
		}
	}
	rss, err := harness.PeakRSS(prov.Process.Pid)
	if err != nil {
		return "", err
	}
	sl, err := b.saveLoad(single)
	if err != nil {
		return "", err
	}
	rssAll, err := harness.PeakRSS(prov.Process.Pid)
	if err != nil {
		return "", err
	}

	var sb strings.Builder
	fmt.Fprintf(&sb, "# Installing a %s image (%s)\n\n", harness.Human(size), time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&sb, "Medians of %d rounds, all in one run on this machine; each round runs every contender once, so that all of them meet the same drift of the machine; MB/s is 10^6 layer bytes per second, from the request to the image being usable.\n", b.runs)
	fmt.Fprintf(&sb, "Each run starts after a sync(2), so that none pays for the writeback of the one before.\n")
	fmt.Fprintf(&sb, "providerd verifies every digest and fsyncs every blob before it records the image; crane and skopeo write an OCI layout and do not fsync it, so their figures leave their last bytes in the page cache.\n")
	fmt.Fprintf(&sb, "The floor is what the machine allows for the work an install cannot skip, hashing every byte and writing it durably: the slower of the sha256 rate and the rate of a plain write then fsync of the same bytes, as if the two overlapped perfectly. providerd writes aligned chunks with O_DIRECT, so that the disk works while the network and the hash do, and can beat a write-then-fsync.\n\n")
	fmt.Fprintf(&sb, "| image | providerd install | crane pull | skopeo copy | sha256 | synced write | floor |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		fmt.Fprintf(&sb, "| %s | %.0f | %.0f | %s | %.0f | %.0f | %.0f |\n", r.img.label, r.prov, r.crane, orNA(r.skopeo), r.sha, r.sync, min(r.sha, r.sync))
	}
	fmt.Fprintf(&sb, "\n| image | providerd / crane | providerd / skopeo | providerd / sha256 | providerd / synced write | providerd / floor |\n|---|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		fmt.Fprintf(&sb, "| %s | %.2f | %s | %.2f | %.2f | %.2f |\n", r.img.label, r.prov/r.crane, ratio(r.prov, r.skopeo), r.prov/r.sha, r.prov/r.sync, r.prov/min(r.sha, r.sync))
	}
	fmt.Fprintf(&sb, "\nThe direct write is the disk's own bound for the way providerd writes: the same bytes written as its content store writes a download, in aligned 2 MiB chunks with O_DIRECT one at a time (read ahead from the page cache on another goroutine), then fsynced, with no network and no hash. An install that keeps the disk busy all the time comes to it; a ratio above 1 is the drift of this disk between the two runs of a round, not a way past it.\n\n")
	fmt.Fprintf(&sb, "| image | direct write | providerd / direct write |\n|---|---:|---:|\n")
	for _, r := range results {
		fmt.Fprintf(&sb, "| %s | %.0f | %.2f |\n", r.img.label, r.direct, r.prov/r.direct)
	}
	fmt.Fprintf(&sb, "\nproviderd peak RSS (VmHWM) over all the installs: %.1f MiB\n", float64(rss)/(1<<20))
	fmt.Fprintf(&sb, "\n## Save and Install -Path of the %s image\n\n", single.label)
	fmt.Fprintf(&sb, "Save writes the archive to a file on the daemon host (fsynced); load installs it into a store that lacks the image (every blob verified, fsynced); the synced copy reads providerd's blob files and writes them to new files, fsynced: the disk work a save cannot skip. Every run reads its source from disk: the blobs, the archive and the copy's source are dropped from the page cache first.\n\n")
	fmt.Fprintf(&sb, "| operation | MB/s | / synced copy |\n|---|---:|---:|\n")
	fmt.Fprintf(&sb, "| providerd save | %.0f | %.2f |\n| providerd load | %.0f | %.2f |\n| synced copy of the blob files | %.0f | 1.00 |\n",
		sl.save, sl.save/sl.cp, sl.load, sl.load/sl.cp, sl.cp)
	fmt.Fprintf(&sb, "\nproviderd peak RSS (VmHWM) over the installs, saves and loads: %.1f MiB\n", float64(rssAll)/(1<<20))
	if len(profiles) > 0 {
		fmt.Fprintf(&sb, "\n## Profile\n\nOne more install of each image, under perf record of providerd and catalogd (recordings in %s). CPU is user + system time per GiB installed, from /proc; the flat profile is the share of the samples of each command, shared object and symbol.\n", b.profile)
		for _, p := range profiles {
			sb.WriteString("\n" + p)
		}
	}
	if skopeo == "" {
		fmt.Fprintf(&sb, "\nskopeo was not installed: bench/run.sh installs it with apt-get.\n")
	}
	return sb.String(), nil
}

func orNA(x float64) string {
	if x == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", x)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// timed runs f after the disk has settled and returns n bytes over its
// duration in MB/s.
func timed(n int64, f func() error) (float64, error) {
	harness.Settle()
	start := time.Now()
	if err := f(); err != nil {
		return 0, err
	}
	return harness.MBps(n, time.Since(start)), nil
}

type saveLoadResult struct{ save, load, cp float64 }

// saveLoad installs img, then measures, runs times each: Save to a file on
// the daemon host, then (after removing the image) Install -Path of that
// file, next to a plain cp of the same blob files.
func (b *bench) saveLoad(img *image) (saveLoadResult, error) {
	var r saveLoadResult
	last := img.chain[len(img.chain)-1]
	file := filepath.Join(b.work, "saved.tar")
	post := func(path string, body any) error {
		var rd io.Reader
		if body != nil {
			bs, _ := json.Marshal(body)
			rd = bytes.NewReader(bs)
		}
		resp, err := b.hc.Post("http://"+b.provAddr+path, "application/json", rd)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("POST %s: %s %s", path, resp.Status, msg)
		}
		return nil
	}
	harness.Step("%s: providerd save and load x %d", img.label, b.runs)
	// Install the image once; each run then saves it, removes it and loads
	// it back.
	if err := harness.Run(nil, filepath.Join(b.bin, "cimage"), "--endpoint", "http://"+b.provAddr, "--token", b.token, "install", last); err != nil {
		return r, err
	}
	blobs, err := filepath.Glob(filepath.Join(b.work, "providerd", "content", "blobs", "sha256", "*"))
	if err != nil {
		return r, err
	}
	// Each round starts from disk: the blobs, the archive and the copy's
	// source are dropped from the page cache first.
	var saves, loads, copies []float64
	for range b.runs {
		os.Remove(file)
		if err := harness.Evict(blobs...); err != nil {
			return r, err
		}
		s, err := timed(img.size, func() error {
			return post("/v1/images/save", api.SaveRequest{Name: last, Path: file, Force: true})
		})
		if err != nil {
			return r, err
		}
		for i := len(img.chain) - 1; i >= 0; i-- {
			if err := b.remove(img.chain[i]); err != nil {
				return r, err
			}
		}
		if err := harness.Evict(file); err != nil {
			return r, err
		}
		l, err := timed(img.size, func() error { return post("/v1/images/load?path="+url.QueryEscape(file), nil) })
		if err != nil {
			return r, err
		}
		// The load committed the same blobs again, at the same paths.
		if err := harness.Evict(blobs...); err != nil {
			return r, err
		}
		c, err := harness.SyncedCopy(b.work, blobs...)
		if err != nil {
			return r, err
		}
		fmt.Fprintf(os.Stderr, "    save %.0f MB/s, load %.0f MB/s, synced copy %.0f MB/s\n", s, l, c)
		saves, loads, copies = append(saves, s), append(loads, l), append(copies, c)
	}
	r.save, r.load, r.cp = harness.MedianOf(saves), harness.MedianOf(loads), harness.MedianOf(copies)
	os.Remove(file)
	return r, nil
}

// profiled installs img once more under perf record of providerd and
// catalogd, and returns the Markdown of what it saw: the rate, the CPU
// time of both per GiB, and perf's flat profile.
func (b *bench) profiled(img *image, prov, cat int) (string, error) {
	if err := os.MkdirAll(b.profile, 0o755); err != nil {
		return "", err
	}
	slug := strings.ReplaceAll(strings.ReplaceAll(img.label, " ", "-"), ".", "_")
	harness.Step("%s: one install under perf record", img.label)
	type cpu struct{ user, sys time.Duration }
	read := func() (p, c cpu, err error) {
		if p.user, p.sys, err = harness.CPUTime(prov); err != nil {
			return
		}
		c.user, c.sys, err = harness.CPUTime(cat)
		return
	}
	perf, err := harness.StartPerf(filepath.Join(b.profile, slug+".perf.data"), prov, cat)
	if err != nil {
		return "", err
	}
	p0, c0, err := read()
	if err != nil {
		perf.Stop()
		return "", err
	}
	mbps, err := b.install(img)
	p1, c1, rerr := read()
	if serr := perf.Stop(); err == nil {
		err = serr
	}
	if err == nil {
		err = rerr
	}
	if err != nil {
		return "", err
	}
	report, err := perf.Report(1)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(b.profile, slug+".txt"), []byte(report), 0o644); err != nil {
		return "", err
	}
	gib := float64(img.size) / (1 << 30)
	perGiB := func(d time.Duration) float64 { return d.Seconds() / gib }
	var sb strings.Builder
	fmt.Fprintf(&sb, "### %s\n\n%.0f MB/s under perf. CPU per GiB: providerd %.2f s user + %.2f s system, catalogd %.2f s user + %.2f s system.\n\n```\n%s```\n",
		img.label, mbps, perGiB(p1.user-p0.user), perGiB(p1.sys-p0.sys), perGiB(c1.user-c0.user), perGiB(c1.sys-c0.sys), report)
	return sb.String(), nil
}

// remove removes an installed image by name.
func (b *bench) remove(name string) error {
	return harness.RemoveImage(b.hc, "http://"+b.provAddr, name)
}

// install installs img through providerd's API, waits for the job, then
// removes the chain so that the next run starts from an empty store.
func (b *bench) install(img *image) (float64, error) {
	last := img.chain[len(img.chain)-1]
	mbps, err := timed(img.size, func() error {
		_, err := harness.Install(b.hc, "http://"+b.provAddr, api.InstallRequest{Name: last})
		return err
	})
	if err != nil {
		return 0, err
	}
	for i := len(img.chain) - 1; i >= 0; i-- {
		if err := b.remove(img.chain[i]); err != nil {
			return 0, err
		}
	}
	return mbps, nil
}

// writeLayer writes an uncompressed layer tar of about size bytes: one file
// of pseudo-random (incompressible) bytes.
func writeLayer(path string, size int64, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	payload := size - 3*512 // header and end-of-archive blocks
	if err := tw.WriteHeader(&tar.Header{Name: "Files/data.bin", Mode: 0o644, Size: payload, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	var key [32]byte
	key[0] = byte(seed)
	if _, err := io.CopyN(tw, rand.NewChaCha8(key), payload); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
