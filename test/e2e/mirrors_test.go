package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
)

// The fallback cases of a source's registry mirrors. Each providerd has
// the source catalog at a clean proxy of catalogd (up), so that what the
// location served is counted apart from what the mirror served, and one
// mirror that fails in its own way.

// nanoBlobs are the digests of the config and layers of NanoServer's
// default version (the one `cimage install NanoServer` picks).
func nanoBlobs(t *testing.T, c *catalogd) []string {
	t.Helper()
	m := manifestOf(t, c, "nanoserver", "10.0.14393.0")
	out := []string{m.Config.Digest.String()}
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// wantServedOnce fails unless proxy served each blob exactly once.
func wantServedOnce(t *testing.T, what string, proxy *faultProxy, blobs []string) {
	t.Helper()
	for _, d := range blobs {
		if gets, _, _ := proxy.counts(d); gets != 1 {
			t.Errorf("%s served blob %s %d times, want 1", what, d, gets)
		}
	}
}

func TestMirrorFallback(t *testing.T) {
	c := startCatalogd(t, true)
	blobs := nanoBlobs(t, c)

	t.Run("a mirror that answers 404", func(t *testing.T) {
		up := newFaultProxy(t, c.URL(""))
		empty := "http://" + startRegistry(t, "") // a real registry that has nothing
		p := startProviderd(t, up.URL+",mirror="+empty, "")
		out := mustCimage(t, p, "install", "NanoServer")
		if !downloadedIn.MatchString(out) {
			t.Fatalf("install output:\n%s", out)
		}
		wantServedOnce(t, "the location", up, blobs)
	})

	t.Run("a mirror that sends wrong bytes", func(t *testing.T) {
		up := newFaultProxy(t, c.URL(""))
		bad := newFaultProxy(t, c.URL(""))
		layer := blobs[1]
		bad.set(func(p *faultProxy) { p.corrupt[layer] = true })
		p := startProviderd(t, up.URL+",mirror="+bad.URL, "")
		stdout, stderr, code := cimageStreams(t, p, "install", "NanoServer")
		if code != 0 {
			t.Fatalf("install: exit %d\n%s\n%s", code, stdout, stderr)
		}
		// Refused, then fetched from the location; the rest came from
		// the mirror.
		if gets, _, _ := bad.counts(layer); gets != 1 {
			t.Errorf("the mirror was asked for the tampered layer %d times, want 1", gets)
		}
		if gets, _, _ := up.counts(layer); gets != 1 {
			t.Errorf("the location served the tampered layer %d times, want 1", gets)
		}
		for _, d := range blobs {
			if gets, _, _ := up.counts(d); d != layer && gets != 0 {
				t.Errorf("the location served blob %s %d times, want 0 (the mirror has it)", d, gets)
			}
		}
		if !strings.Contains(stderr, "WARNING") || !strings.Contains(stderr, "mirror "+bad.URL+" served bytes that do not match the digest: refused") {
			t.Errorf("install does not warn of the refused mirror bytes:\n%s", stderr)
		}
		log, err := os.ReadFile(p.log.Name())
		if err != nil {
			t.Fatal(err)
		}
		var event string
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, "event=security") {
				event = line
			}
		}
		if !strings.Contains(event, "level=error") || !strings.Contains(event, bad.URL) || !strings.Contains(event, layer) {
			t.Errorf("no security event names the mirror and the layer; providerd's log:\n%s", log)
		}
		imgs := p.images(t)
		if len(imgs) != 1 {
			t.Fatalf("images after the install: %s", describe(imgs))
		}
		if _, err := os.Stat(filepath.Join(p.Root, "content", "blobs", "sha256", strings.TrimPrefix(layer, "sha256:"))); err != nil {
			t.Errorf("the layer is not in the store: %v", err)
		}
	})

	t.Run("a mirror that hangs", func(t *testing.T) {
		up := newFaultProxy(t, c.URL(""))
		hung := newFaultProxy(t, c.URL(""))
		hung.set(func(p *faultProxy) { p.hang = true })
		p := startProviderd(t, up.URL+",mirror="+hung.URL, "", "--mirror-timeout", "1s")
		start := time.Now()
		out := mustCimage(t, p, "install", "NanoServer")
		took := time.Since(start)
		if !downloadedIn.MatchString(out) {
			t.Fatalf("install output:\n%s", out)
		}
		// One time-out, then the mirror is passed over as unreachable
		// rather than waited for blob after blob.
		if took > 30*time.Second {
			t.Errorf("the install took %s behind a mirror that hangs, with a 1s time-out", took)
		}
		wantServedOnce(t, "the location", up, blobs)
	})

	t.Run("the location is down", func(t *testing.T) {
		down := "http://" + freeAddr(t) // nothing listens there
		mirror := newFaultProxy(t, c.URL(""))
		p := startProviderd(t, down+",mirror="+mirror.URL, "")
		stdout, stderr, code := cimageStreams(t, p, "find", "NanoServer")
		if code != 0 || !strings.Contains(stdout, "NanoServer") {
			t.Fatalf("find: exit %d\n%s\n%s", code, stdout, stderr)
		}
		want := "WARNING: source catalog: its location is unreachable; the entries come from its mirror " + mirror.URL
		if !strings.Contains(stderr, want) {
			t.Errorf("find's stderr does not say the entries come from the mirror:\n%s\nwant %q", stderr, want)
		}
		var listed api.SourcesResponse
		if err := json.Unmarshal([]byte(mustCimage(t, p, "source", "list", "--output", "json")), &listed); err != nil {
			t.Fatal(err)
		}
		if len(listed.Sources) != 1 || listed.Sources[0].Status == nil || listed.Sources[0].Status.Origin != mirror.URL {
			t.Errorf("source list %+v, want the status's origin %s", listed.Sources, mirror.URL)
		}
		table := mustCimage(t, p, "source", "list")
		if !strings.Contains(table, mirror.URL) || !strings.Contains(table, "from-mirror") {
			t.Errorf("source list does not show the mirror and the from-mirror state:\n%s", table)
		}
		out := mustCimage(t, p, "install", "NanoServer")
		if !downloadedIn.MatchString(out) {
			t.Fatalf("install output:\n%s", out)
		}
		// The index's crawl of the mirror read the image config for its
		// os.version, as a crawl does; the install read it again.
		wantServedOnce(t, "the mirror", mirror, blobs[1:])
		if gets, _, _ := mirror.counts(blobs[0]); gets > 2 {
			t.Errorf("the mirror served the config %d times, want at most 2", gets)
		}
	})
}
