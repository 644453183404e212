package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// pushLayerless pushes a layerless image to repo:tag over HTTP: its config
// as a monolithic upload, then its manifest.
func (c *catalogd) pushLayerless(hc *http.Client, repo, tag, title, version, unique string) error {
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"windows","rootfs":{"type":"layers","diff_ids":[]},"comment":%q}`, unique))
	d := digest.FromBytes(cfg)
	if err := c.send(hc, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), "application/octet-stream", cfg, http.StatusCreated); err != nil {
		return err
	}
	m, _ := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config:      ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: d, Size: int64(len(cfg))},
		Layers:      []ocispec.Descriptor{},
		Annotations: map[string]string{find.AnnotationTitle: title, find.AnnotationVersion: version},
	})
	return c.send(hc, http.MethodPut, "/v2/"+repo+"/manifests/"+tag, ocispec.MediaTypeImageManifest, m, http.StatusCreated)
}

// send makes one authenticated request and checks its status.
func (c *catalogd) send(hc *http.Client, method, path, ctype string, body []byte, want int) error {
	req, err := http.NewRequest(method, c.URL(path), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	req.SetBasicAuth(c.User, c.Password)
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

// TestFindIndexSurvivesKill kills catalogd with SIGKILL during a stream of
// pushes, retags and untags from 4 clients. Opened again, the find index
// answers every query form as a rebuild from the stored manifests and tags
// does, and the restarted catalogd serves it.
func TestFindIndexSurvivesKill(t *testing.T) {
	root := t.TempDir()
	c := startCatalogdAt(t, root)
	var pushes, untags atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 10 * time.Second}
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range 100000 {
				select {
				case <-stop:
					return
				default:
				}
				n := rng.IntN(40)
				repo, tag := fmt.Sprintf("app%02d", n), fmt.Sprintf("1.%d", rng.IntN(5))
				var err error
				if rng.IntN(5) == 0 {
					err = c.send(hc, http.MethodDelete, "/v2/"+repo+"/manifests/"+tag, "", nil, http.StatusAccepted)
					if err == nil {
						untags.Add(1)
					} else if bytes.Contains([]byte(err.Error()), []byte(" 404 ")) {
						err = nil
					}
				} else {
					err = c.pushLayerless(hc, repo, tag, fmt.Sprintf("App%02d", n), tag, fmt.Sprintf("%d-%d", w, i))
					if err == nil {
						pushes.Add(1)
					}
				}
				if err != nil {
					return // the kill
				}
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for pushes.Load() < 300 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c.kill(t)
	close(stop)
	wg.Wait()
	if pushes.Load() < 300 {
		t.Fatalf("only %d pushes in 30 s", pushes.Load())
	}

	ctx := context.Background()
	db, err := meta.Open(filepath.Join(root, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := content.NewStore(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	r := catalog.NewRegistry(cs, db)
	ms, err := r.FindManifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rebuilt := find.Index(ms)
	queries := []find.Options{{}, {AllVersions: true}, {Name: "app1*", AllVersions: true}, {Name: "App0?"}}
	for n := range 40 {
		name := fmt.Sprintf("App%02d", n)
		queries = append(queries, find.Options{Name: name, AllVersions: true}, find.Options{Name: name, RequiredVersion: "1.3"})
	}
	for _, o := range queries {
		got, gerr := r.Find(ctx, o)
		want, werr := find.Filter(rebuilt, o)
		if fmt.Sprint(gerr) != fmt.Sprint(werr) || fmt.Sprint(digests(got)) != fmt.Sprint(digests(want)) {
			t.Fatalf("after the kill, Find(%+v) = %v %v; a rebuild gives %v %v", o, digests(got), gerr, digests(want), werr)
		}
	}
	all, _ := r.Find(ctx, find.Options{AllVersions: true})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed after %d pushes and %d untags; %d entries, as a rebuild finds", pushes.Load(), untags.Load(), len(all))

	c2 := startCatalogdAt(t, root)
	code, fr, body := c2.find(t, "allVersions=true")
	if code != http.StatusOK || len(fr.Images) != len(all) {
		t.Fatalf("find after the restart: %d, %d entries, want %d\n%.300s", code, len(fr.Images), len(all), body)
	}
}

// digests lists entries as repository:version@digest.
func digests(es []api.FindEntry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.Repository+":"+e.Version+"@"+e.Digest)
	}
	return out
}
