package docker

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/catalog/publish"
	engine "github.com/containerprovider/containerprovider/provider"
	servercatalog "github.com/containerprovider/containerprovider/server/catalog"
	"github.com/containerprovider/containerprovider/server/listener"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// newCatalogd serves a seeded catalog (small layers) on loopback.
func newCatalogd(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	db, err := meta.Open(filepath.Join(dir, "catalog.db"), meta.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	cs, err := content.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	reg := catalog.NewRegistry(cs, db)
	if _, err := publish.Seed(t.Context(), reg, publish.SeedOptions{
		BaseLayerSize: 64 << 10, AppLayerSize: 8 << 10, Compression: publish.CompressionNone,
	}); err != nil {
		t.Fatal(err)
	}
	s, err := servercatalog.New(reg, servercatalog.WithLogger(quietLogger()), servercatalog.WithInsecureDev(true))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL
}

// newEngineEnv is a Server over a real provider whose source is a seeded
// catalog, on loopback; it returns the provider and its root too.
func newEngineEnv(t *testing.T) (*testEnv, *engine.Provider, string) {
	t.Helper()
	catalogURL := newCatalogd(t)
	root := t.TempDir()
	p, err := engine.New(context.Background(), engine.Config{
		Root:           root,
		DefaultSources: []api.Source{{Name: "catalog", Location: catalogURL}},
		Logger:         quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	s, err := New(p, WithLogger(quietLogger()), WithRoot(root), WithPolicy(listener.Open()))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	e := &testEnv{s: s, url: srv.URL}
	return e, p, root
}

// TestAgainstTheEngine runs the Docker API over the real provider and a
// real catalog: search, pull (with its parent), images, history, and rmi
// with its conflict and by short id.
func TestAgainstTheEngine(t *testing.T) {
	e, p, root := newEngineEnv(t)

	var found []searchResult
	e.do(t, http.MethodGet, "/v1.50/images/search?term=iis").decode(t, &found)
	if !slices.ContainsFunc(found, func(r searchResult) bool { return r.Name == "microsoft/iis" && r.IsOfficial }) {
		t.Fatalf("search iis: %+v", found)
	}

	pull := func(query, status string) {
		t.Helper()
		r := e.do(t, http.MethodPost, "/v1.50/images/create?"+query)
		msgs := messages(t, r.body)
		if r.status != http.StatusOK || len(msgs) == 0 || msgs[len(msgs)-1].Status != status {
			t.Fatalf("pull %s: %d %q", query, r.status, lines(msgs))
		}
	}
	pull("fromImage=docker.io/library/nanoserver&tag=10.0.10586.0", "Status: Downloaded newer image for nanoserver:10.0.10586.0")
	pull("fromImage=nanoserver&tag=10.0.10586.0", "Status: Image is up to date for nanoserver:10.0.10586.0")
	pull("fromImage=docker.io/microsoft/iis&tag=latest", "Status: Downloaded newer image for microsoft/iis:latest")

	var imgs []imageSummary
	e.do(t, http.MethodGet, "/v1.50/images/json").decode(t, &imgs)
	var tags []string
	for _, s := range imgs {
		tags = append(tags, s.RepoTags...)
	}
	slices.Sort(tags)
	want := []string{"microsoft/iis:1.0.0.0", "microsoft/iis:latest", "nanoserver:10.0.10586.0", "nanoserver:latest", "windowsservercore:10.0.14393.0", "windowsservercore:latest"}
	if !slices.Equal(tags, want) {
		t.Fatalf("tags %q, want %q", tags, want)
	}

	var hist []historyItem
	e.do(t, http.MethodGet, "/images/microsoft/iis/history").decode(t, &hist)
	if len(hist) != 2 || !slices.Contains(hist[1].Tags, "windowsservercore:10.0.14393.0") {
		t.Fatalf("history %+v", hist)
	}

	var info systemInfo
	e.do(t, http.MethodGet, "/info").decode(t, &info)
	if info.Images != 3 || info.DockerRootDir != root {
		t.Fatalf("info %+v", info)
	}

	e.do(t, http.MethodDelete, "/images/windowsservercore:10.0.14393.0").wantError(t, http.StatusConflict, "image has dependent child images")

	var nano imageInspect
	e.do(t, http.MethodGet, "/images/nanoserver:10.0.10586.0/json").decode(t, &nano)
	var del []deleteItem
	e.do(t, http.MethodDelete, "/images/"+shortID(nano.ID)).decode(t, &del)
	if len(del) == 0 || del[len(del)-1].Deleted != nano.ID || del[0].Untagged != "nanoserver:10.0.10586.0" {
		t.Fatalf("rmi %+v", del)
	}
	e.do(t, http.MethodGet, "/images/nanoserver/json").wantError(t, http.StatusNotFound, "No such image")
	if got, _ := p.Images(t.Context(), engine.GetOptions{Name: "nanoserver"}); len(got) != 0 {
		t.Fatalf("the provider still lists %v", got)
	}
}

// TestSaveLoadAgainstTheEngine saves an image through the Docker API,
// removes it, and loads the archive back: the same image returns, and the
// stream names it.
func TestSaveLoadAgainstTheEngine(t *testing.T) {
	e, _, _ := newEngineEnv(t)
	r := e.do(t, http.MethodPost, "/v1.50/images/create?fromImage=microsoft/iis&tag=latest")
	if msgs := messages(t, r.body); r.status != http.StatusOK || len(msgs) == 0 || msgs[len(msgs)-1].Status != "Status: Downloaded newer image for microsoft/iis:latest" {
		t.Fatalf("pull: %d %q", r.status, lines(msgs))
	}
	var before imageInspect
	e.do(t, http.MethodGet, "/images/microsoft/iis:latest/json").decode(t, &before)

	saved := e.do(t, http.MethodGet, "/v1.50/images/get?names=microsoft%2Fiis%3Alatest")
	if saved.status != http.StatusOK || saved.header.Get("Content-Type") != contentTypeTar || len(saved.body) == 0 {
		t.Fatalf("save: %d %q, %d bytes", saved.status, saved.header.Get("Content-Type"), len(saved.body))
	}
	var del []deleteItem
	e.do(t, http.MethodDelete, "/images/microsoft/iis:1.0.0.0").decode(t, &del)
	if len(del) == 0 || del[len(del)-1].Deleted != before.ID {
		t.Fatalf("rmi %+v", del)
	}
	e.do(t, http.MethodGet, "/images/microsoft/iis:latest/json").wantError(t, http.StatusNotFound, "No such image")

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.url+"/v1.50/images/load?quiet=1", bytes.NewReader(saved.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentTypeTar)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != `{"stream":"Loaded image: microsoft/iis:1.0.0.0\n"}`+"\n" {
		t.Fatalf("load: %d %s", resp.StatusCode, body)
	}
	var after imageInspect
	e.do(t, http.MethodGet, "/images/microsoft/iis:1.0.0.0/json").decode(t, &after)
	if after.ID != before.ID || after.Parent != before.Parent {
		t.Fatalf("loaded image %s (parent %s), saved %s (parent %s)", after.ID, after.Parent, before.ID, before.Parent)
	}
}

// layerFiles reads the saved archive b and returns the files of its
// layers (the blobs that are a tar, gzipped or not), by name, with their
// content.
func layerFiles(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for range 10000 {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("archive: %v", err)
		}
		if !strings.HasPrefix(h.Name, "blobs/sha256/") || h.Size == 0 {
			continue
		}
		blob, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = bytes.NewReader(blob)
		if zr, err := gzip.NewReader(bytes.NewReader(blob)); err == nil {
			r = zr
		}
		lr := tar.NewReader(r)
		for range 10000 {
			lh, err := lr.Next()
			if err != nil {
				break // the end of a layer, or a blob that is not one
			}
			if lh.Typeflag == tar.TypeReg {
				body, err := io.ReadAll(lr)
				if err != nil {
					break
				}
				out[strings.TrimPrefix(lh.Name, "./")] = string(body)
			}
		}
	}
	t.Fatal("archive: more than 10000 entries")
	return nil
}

// TestCopyCommitAgainstTheEngine runs docker cp's two calls (the stat of
// the destination, then the tar) into a container of the real provider,
// commits it, and finds the file in the committed image's layer; then
// docker rmi -f of the image a stopped container uses, which untags it,
// a pull that names it again, and the attach of a docker run, which
// removes the container the run created.
func TestCopyCommitAgainstTheEngine(t *testing.T) {
	e, p, _ := newEngineEnv(t)
	ctx := t.Context()
	e.doBody(t, http.MethodPost, "/v1.51/containers/create?name=c1", `{"Image":"nanoserver:10.0.10586.0"}`).wantStatus(t, http.StatusCreated)

	if r := e.do(t, http.MethodHead, "/v1.51/containers/c1/archive?path=/app"); r.status != http.StatusNotFound {
		t.Fatalf("stat of a missing path: %d", r.status)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct{ name, body string }{{"app/hello.txt", "hello from docker cp\n"}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, e.url+"/v1.51/containers/c1/archive?path=/&noOverwriteDirNonDir=true", &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT archive: %d", resp.StatusCode)
	}
	r := e.do(t, http.MethodHead, "/v1.51/containers/c1/archive?path=/app")
	st, _ := base64.StdEncoding.DecodeString(r.header.Get(headerPathStat))
	if r.status != http.StatusOK || !strings.Contains(string(st), `"name":"app"`) {
		t.Fatalf("stat of /app: %d %s", r.status, st)
	}
	// A tar that escapes is refused by the provider's archive code.
	var bad bytes.Buffer
	tw = tar.NewWriter(&bad)
	_ = tw.WriteHeader(&tar.Header{Name: "../escape", Mode: 0o644, Typeflag: tar.TypeReg})
	_ = tw.Close()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, e.url+"/containers/c1/archive?path=/app", &bad)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("PUT of an escaping tar: %d", resp.StatusCode)
	}

	r = e.do(t, http.MethodPost, "/v1.51/commit?container=c1&repo=withfile&tag=1.0")
	if r.status != http.StatusCreated {
		t.Fatalf("commit: %d %s", r.status, r.body)
	}
	saved := e.do(t, http.MethodGet, "/v1.51/images/get?names=withfile%3A1.0")
	if saved.status != http.StatusOK {
		t.Fatalf("save: %d %s", saved.status, saved.body)
	}
	if got := layerFiles(t, saved.body)["app/hello.txt"]; got != "hello from docker cp\n" {
		t.Fatalf("app/hello.txt in the committed image: %q", got)
	}

	// docker rmi -f of nanoserver, which the stopped c1 uses: untagged,
	// kept, and named again by a pull. The committed child goes first: a
	// child cannot be forced.
	e.do(t, http.MethodDelete, "/images/nanoserver:10.0.10586.0?force=1").wantError(t, http.StatusConflict, "(cannot be forced) - image has dependent child images")
	var gone []deleteItem
	e.do(t, http.MethodDelete, "/images/withfile:1.0").decode(t, &gone)
	e.do(t, http.MethodPost, "/containers/c1/stop").wantStatus(t, http.StatusNotModified)
	e.do(t, http.MethodDelete, "/images/nanoserver:10.0.10586.0").wantError(t, http.StatusConflict, "(must force) - container c1 is using")
	var del []deleteItem
	e.do(t, http.MethodDelete, "/images/nanoserver:10.0.10586.0?force=1").decode(t, &del)
	if len(del) != 3 || del[0].Untagged != "nanoserver:10.0.10586.0" || del[1].Untagged != "nanoserver:latest" || !strings.HasPrefix(del[2].Untagged, "nanoserver@sha256:") {
		t.Fatalf("rmi -f: %+v", del)
	}
	var imgs []imageSummary
	e.do(t, http.MethodGet, "/images/json?filters="+url.QueryEscape(`{"dangling":{"true":true}}`)).decode(t, &imgs)
	if len(imgs) != 1 || len(imgs[0].RepoTags) != 0 {
		t.Fatalf("dangling images after rmi -f: %+v", imgs)
	}
	nanoID := imgs[0].ID
	e.do(t, http.MethodDelete, "/images/"+shortID(nanoID)+"?force=1").wantError(t, http.StatusConflict, "providerd keeps the image of a container until the container is removed")
	if c, err := p.Container(ctx, "c1"); err != nil || c.ImageDigest != nanoID {
		t.Fatalf("c1 after rmi -f: %+v, %v", c, err)
	}
	r = e.do(t, http.MethodPost, "/images/create?fromImage=nanoserver&tag=10.0.10586.0")
	if r.status != http.StatusOK {
		t.Fatalf("pull: %d %s", r.status, r.body)
	}
	var insp imageInspect
	e.do(t, http.MethodGet, "/images/nanoserver:latest/json").decode(t, &insp)
	if insp.ID != nanoID || !slices.Equal(insp.RepoTags, []string{"nanoserver:10.0.10586.0", "nanoserver:latest"}) {
		t.Fatalf("after the pull: %+v", insp)
	}

	// docker run: the create, then the attach, which removes it.
	e.doBody(t, http.MethodPost, "/v1.51/containers/create?name=r1", `{"Image":"nanoserver:latest"}`).wantStatus(t, http.StatusCreated)
	e.do(t, http.MethodPost, "/v1.51/containers/r1/attach?stream=1&stdout=1&stderr=1").wantError(t, http.StatusNotImplemented, "was removed")
	if _, err := p.Container(ctx, "r1"); !errdefs.IsNotFound(err) {
		t.Fatalf("r1 after docker run: %v", err)
	}
}
