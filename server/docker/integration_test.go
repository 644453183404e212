package docker

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerprovider/containerprovider/api"
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
