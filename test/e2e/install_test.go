package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
)

// manifestOf reads an image manifest straight from catalogd.
func manifestOf(t *testing.T, c *catalogd, repo, tag string) ocispec.Manifest {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.URL("/v2/"+repo+"/manifests/"+tag), nil)
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m ocispec.Manifest
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

var downloadedIn = regexp.MustCompile(`Downloaded in \d+ hours?, \d+ minutes?, \d+ seconds?\.`)

// TestFindInstallGet is the reference session: Find, Install NanoServer
// 10.0.10586.0, Get.
func TestFindInstallGet(t *testing.T) {
	c := startCatalogd(t, true)
	p := startProviderd(t, c.URL(""), "")

	out := mustCimage(t, p, "find")
	for _, want := range []string{"Name", "Version", "Source", "Description", "NanoServer", "WindowsServerCore", "catalog"} {
		if !strings.Contains(out, want) {
			t.Fatalf("cimage find does not show %q:\n%s", want, out)
		}
	}
	out = mustCimage(t, p, "install", "NanoServer", "--required-version", "10.0.10586.0")
	if !downloadedIn.MatchString(out) {
		t.Fatalf("cimage install does not end with the Downloaded-in line:\n%s", out)
	}
	out = mustCimage(t, p, "images")
	if !regexp.MustCompile(`(?m)^NanoServer\s+CN=Microsoft\s+10\.0\.10586\.0\s+True\s*$`).MatchString(out) {
		t.Fatalf("cimage images:\n%s", out)
	}
	for _, col := range []string{"Name", "Publisher", "Version", "IsOSImage"} {
		if !strings.Contains(out, col) {
			t.Fatalf("cimage images has no %s column:\n%s", col, out)
		}
	}
}

// TestInstallPullsParent installs an application image: its parent,
// WindowsServerCore, comes first.
func TestInstallPullsParent(t *testing.T) {
	c := startCatalogd(t, true)
	p := startProviderd(t, c.URL(""), "")
	out := mustCimage(t, p, "install", "microsoft/iis")
	if !downloadedIn.MatchString(out) {
		t.Fatalf("install output:\n%s", out)
	}
	imgs := p.images(t)
	wsc, iis := findImage(imgs, "WindowsServerCore", "10.0.14393.0"), findImage(imgs, "microsoft/iis", "1.0.0.0")
	if wsc == nil || iis == nil {
		t.Fatalf("installed: %s", describe(imgs))
	}
	if !wsc.IsOSImage || iis.IsOSImage || iis.ParentImage == nil || iis.ParentImage.Name != "WindowsServerCore" ||
		iis.ParentImage.Version != "10.0.14393.0" || iis.ParentImage.Digest != wsc.Digest {
		t.Fatalf("parent not recorded: iis %+v, parent %+v", iis, iis.ParentImage)
	}
}

// TestInstallResumesAfterKill kills providerd with SIGKILL in the middle of
// a large install, through a catalog slowed down by the test proxy, and
// checks that the restarted daemon finishes the job and downloads only the
// bytes it did not have.
func TestInstallResumesAfterKill(t *testing.T) {
	const layerSize = 24 << 20
	c := startCatalogdSeeded(t, []string{"--base-layer-size", fmt.Sprint(layerSize), "--compression", "none"})
	proxy := newFaultProxy(t, c.URL(""))
	proxy.set(func(p *faultProxy) { p.bytesPerSec = 8 << 20 })
	p := startProviderd(t, proxy.URL, "")

	m := manifestOf(t, c, "nanoserver", "10.0.10586.0")
	big := m.Layers[len(m.Layers)-1]
	job := p.install(t, api.InstallRequest{Name: "NanoServer", VersionOptions: api.VersionOptions{RequiredVersion: "10.0.10586.0"}})

	// Wait until about a third of the layer is on disk, then kill -9.
	deadline := time.Now().Add(time.Minute)
	for {
		if _, _, served := proxy.counts(big.Digest.String()); served > big.Size/3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the install did not reach a third of the layer in a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if imgs := p.images(t); len(imgs) != 0 {
		t.Fatalf("an image record exists before its blobs are committed: %s", describe(imgs))
	}
	p.kill(t)

	ingests, _ := filepath.Glob(filepath.Join(p.Root, "content", "ingest", "*", "data"))
	var onDisk int64
	for _, f := range ingests {
		if fi, err := os.Stat(f); err == nil && fi.Size() > onDisk {
			onDisk = fi.Size()
		}
	}
	if onDisk == 0 || onDisk >= big.Size {
		t.Fatalf("after kill -9, %d of %d bytes of the layer are on disk", onDisk, big.Size)
	}
	// The proxy may still be reading the first download's stream when the
	// kill lands: wait until its count settles.
	_, _, before := proxy.counts(big.Digest.String())
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		_, _, now := proxy.counts(big.Digest.String())
		if now == before {
			break
		}
		before = now
	}

	// Restart, at full speed: the job resumes by itself.
	proxy.set(func(p *faultProxy) { p.bytesPerSec = 0 })
	p.start(t)
	done := p.waitJob(t, job.ID)
	if done.State != api.JobSucceeded {
		t.Fatalf("resumed job ended %s: %+v", done.State, done.Error)
	}
	gets, ranged, after := proxy.counts(big.Digest.String())
	again := after - before
	t.Logf("layer of %d bytes: %d on disk at the kill, %d downloaded after the restart (%d GETs, %d with Range)",
		big.Size, onDisk, again, gets, ranged)
	if again != big.Size-onDisk {
		t.Fatalf("downloaded %d bytes after the restart, want exactly the %d missing", again, big.Size-onDisk)
	}
	if ranged == 0 {
		t.Fatal("the resume sent no Range request")
	}
	if img := findImage(p.images(t), "NanoServer", "10.0.10586.0"); img == nil {
		t.Fatal("NanoServer is not installed after the resumed job")
	}
	for _, l := range m.Layers {
		if _, err := os.Stat(filepath.Join(p.Root, "content", "blobs", "sha256", l.Digest.Encoded())); err != nil {
			t.Fatalf("layer %s is not committed: %v", l.Digest, err)
		}
	}
}

// TestInstallRefusesTamperedLayer serves one layer with corrupted bytes.
func TestInstallRefusesTamperedLayer(t *testing.T) {
	c := startCatalogd(t, true)
	proxy := newFaultProxy(t, c.URL(""))
	p := startProviderd(t, proxy.URL, "")
	m := manifestOf(t, c, "nanoserver", "10.0.14393.0")
	bad := m.Layers[0].Digest
	proxy.set(func(p *faultProxy) { p.corrupt[bad.String()] = true })

	out, code := cimage(t, p, "install", "NanoServer")
	if code == 0 || !strings.Contains(out, bad.String()) || !strings.Contains(strings.ToLower(out), "digest") {
		t.Fatalf("install of a tampered layer: exit %d\n%s", code, out)
	}
	if imgs := p.images(t); len(imgs) != 0 {
		t.Fatalf("records written after a digest error: %s", describe(imgs))
	}
	if _, err := os.Stat(filepath.Join(p.Root, "content", "blobs", "sha256", bad.Encoded())); !os.IsNotExist(err) {
		t.Fatalf("the tampered layer was committed: %v", err)
	}
}

// TestInstallSurvivesCutConnections cuts the layer download three times.
func TestInstallSurvivesCutConnections(t *testing.T) {
	c := startCatalogd(t, true)
	proxy := newFaultProxy(t, c.URL(""))
	proxy.set(func(p *faultProxy) { p.cutAfter, p.cuts = 1<<20, 3 })
	p := startProviderd(t, proxy.URL, "")
	out := mustCimage(t, p, "install", "NanoServer")
	if !downloadedIn.MatchString(out) {
		t.Fatalf("install output:\n%s", out)
	}
	m := manifestOf(t, c, "nanoserver", "10.0.14393.0")
	gets, ranged, served := proxy.counts(m.Layers[0].Digest.String())
	t.Logf("layer of %d bytes: %d GETs, %d with Range, %d bytes served", m.Layers[0].Size, gets, ranged, served)
	if ranged < 1 || served != m.Layers[0].Size {
		t.Fatalf("want resumes by Range and every byte served once: %d GETs, %d ranged, %d of %d bytes",
			gets, ranged, served, m.Layers[0].Size)
	}
}

// TestConcurrentInstallsShareDownloads starts 16 installs of one image at
// once: the catalog sees one GET per blob.
func TestConcurrentInstallsShareDownloads(t *testing.T) {
	c := startCatalogd(t, true)
	proxy := newFaultProxy(t, c.URL(""))
	proxy.set(func(p *faultProxy) { p.bytesPerSec = 16 << 20 })
	p := startProviderd(t, proxy.URL, "")

	var wg sync.WaitGroup
	jobs := make([]api.Job, 16)
	for i := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jobs[i] = p.install(t, api.InstallRequest{Name: "microsoft/iis"})
		}()
	}
	wg.Wait()
	for _, j := range jobs {
		if done := p.waitJob(t, j.ID); done.State != api.JobSucceeded {
			t.Fatalf("job %s: %s %+v", j.ID, done.State, done.Error)
		}
	}
	m := manifestOf(t, c, "microsoft/iis", "1.0.0.0")
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if gets, _, _ := proxy.counts(d.Digest.String()); gets != 1 {
			t.Errorf("blob %s: %d GETs for 16 concurrent installs, want 1", d.Digest, gets)
		}
	}
}

// TestRemoveOfSeveralIsConfirmed: `cimage remove '*'` without --force
// removes nothing and lists the matches, --what-if shows the plan and
// removes nothing, and --force removes them all, parent and child in one
// removal.
func TestRemoveOfSeveralIsConfirmed(t *testing.T) {
	c := startCatalogd(t, true)
	p := startProviderd(t, c.URL(""), "")
	mustCimage(t, p, "install", "microsoft/iis")

	out, code := cimage(t, p, "remove", "*")
	if code != 4 || !strings.Contains(out, `"*" matches 2 installed images:`) ||
		!strings.Contains(out, "  microsoft/iis 1.0.0.0 (id ") || !strings.Contains(out, "  WindowsServerCore 10.0.14393.0 (id ") ||
		!strings.Contains(out, "nothing removed: give --force") {
		t.Fatalf("remove '*': exit %d, want 4 and the matches listed:\n%s", code, out)
	}
	if imgs := p.images(t); len(imgs) != 2 {
		t.Fatalf("a refused remove changed the images: %s", describe(imgs))
	}
	out = mustCimage(t, p, "remove", "*", "--what-if")
	if strings.Count(out, "What if: removing ") != 2 || !strings.Contains(out, "What if: removing microsoft/iis 1.0.0.0") {
		t.Fatalf("remove '*' --what-if:\n%s", out)
	}
	if imgs := p.images(t); len(imgs) != 2 {
		t.Fatalf("--what-if changed the images: %s", describe(imgs))
	}
	out = mustCimage(t, p, "remove", "*", "--force")
	if strings.Count(out, "Removed ") != 2 {
		t.Fatalf("remove '*' --force:\n%s", out)
	}
	if imgs := p.images(t); len(imgs) != 0 {
		t.Fatalf("images left: %s", describe(imgs))
	}
}

// TestRemoveRules: a base image with a child cannot go; the child, then the
// base, can, and the store is empty again.
func TestRemoveRules(t *testing.T) {
	c := startCatalogd(t, true)
	p := startProviderd(t, c.URL(""), "")
	mustCimage(t, p, "install", "microsoft/iis")
	if n := len(blobFiles(t, p.Root)); n == 0 {
		t.Fatal("no blobs after the install")
	}

	out, code := cimage(t, p, "remove", "WindowsServerCore")
	if code != 4 || !strings.Contains(out, "microsoft/iis") {
		t.Fatalf("remove of a parent: exit %d, want 4 (conflict) naming microsoft/iis:\n%s", code, out)
	}
	status, body := p.call(t, http.MethodDelete, "/v1/images?name=WindowsServerCore", nil, nil)
	if status != http.StatusConflict || !strings.Contains(body, "microsoft/iis") {
		t.Fatalf("DELETE parent: %d %s", status, body)
	}
	if imgs := p.images(t); len(imgs) != 2 {
		t.Fatalf("a refused remove changed the images: %s", describe(imgs))
	}

	mustCimage(t, p, "remove", "microsoft/iis")
	mustCimage(t, p, "remove", "WindowsServerCore")
	if imgs := p.images(t); len(imgs) != 0 {
		t.Fatalf("images left: %s", describe(imgs))
	}
	if left := blobFiles(t, p.Root); len(left) != 0 {
		t.Fatalf("%d blobs left after removing every image: %v", len(left), left)
	}
}

// TestPlainRegistrySource installs from the CNCF distribution registry,
// which has no find extension, after crane copied the seeded images to it.
func TestPlainRegistrySource(t *testing.T) {
	reg := tool(t, "registry")
	crane := newClient(t, "crane")
	c := startCatalogd(t, true)

	addr := freeAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "data"), addr)), 0o644)
	startProcess(t, reg, []string{"OTEL_SDK_DISABLED=true"}, "serve", cfg)
	waitHTTP(t, "http://"+addr+"/v2/")
	for _, ref := range []string{"nanoserver:10.0.10586.0", "nanoserver:10.0.14393.0", "windowsservercore:10.0.14393.0", "microsoft/iis:1.0.0.0"} {
		crane.run(t, "copy", "--insecure", c.Addr+"/"+ref, addr+"/"+ref)
	}

	p := startProviderd(t, "http://"+addr, "")
	out := mustCimage(t, p, "find", "nano*", "--all-versions")
	if !strings.Contains(out, "10.0.10586.0") || !strings.Contains(out, "10.0.14393.0") {
		t.Fatalf("find through a plain registry:\n%s", out)
	}
	out = mustCimage(t, p, "install", "microsoft/iis")
	if !downloadedIn.MatchString(out) {
		t.Fatalf("install from a plain registry:\n%s", out)
	}
	imgs := p.images(t)
	if findImage(imgs, "microsoft/iis", "1.0.0.0") == nil || findImage(imgs, "WindowsServerCore", "10.0.14393.0") == nil {
		t.Fatalf("installed from the registry: %s", describe(imgs))
	}
}
