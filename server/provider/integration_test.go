package provider_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/catalog/publish"
	engine "github.com/containerprovider/containerprovider/provider"
	servercatalog "github.com/containerprovider/containerprovider/server/catalog"
	"github.com/containerprovider/containerprovider/server/listener"
	serverprovider "github.com/containerprovider/containerprovider/server/provider"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

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

// TestAgainstTheEngine runs API v1 end to end: the Go client, this server
// with a token, the real provider and a real catalogd.
func TestAgainstTheEngine(t *testing.T) {
	ctx := t.Context()
	catalogURL := newCatalogd(t)
	p, err := engine.New(context.Background(), engine.Config{
		Root:           t.TempDir(),
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
	const token = "integration-token-0123456789"
	s, err := serverprovider.New(p, serverprovider.WithLogger(quietLogger()), serverprovider.WithToken(token), serverprovider.WithVersion("test"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	t.Cleanup(s.StopStreams)
	c, err := client.New(srv.URL, client.WithToken(token))
	if err != nil {
		t.Fatal(err)
	}

	anon, _ := client.New(srv.URL)
	if _, err := anon.Images(ctx, client.ImagesOptions{}); !errdefs.IsUnauthenticated(err) {
		t.Fatalf("without the token: %v", err)
	}
	if h, err := c.Health(ctx); err != nil || h.Status != "ok" {
		t.Fatalf("health %+v, %v", h, err)
	}
	sources, err := c.Sources(ctx)
	if err != nil || len(sources) != 1 || sources[0].Name != "catalog" {
		t.Fatalf("sources %+v, %v", sources, err)
	}
	if _, err := c.AddSource(ctx, api.Source{Name: "catalog", Location: catalogURL}); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("adding a taken name: %v", err)
	}
	if err := c.RemoveSource(ctx, "nothing"); !errdefs.IsNotFound(err) {
		t.Fatalf("removing an unknown source: %v", err)
	}
	refreshed, err := c.RefreshSource(ctx, "catalog")
	if err != nil || refreshed.Status == nil || !refreshed.Status.Complete || refreshed.Status.Entries != 20 {
		t.Fatalf("refresh: %+v, %v", refreshed.Status, err)
	}
	if _, err := c.RefreshSource(ctx, "nothing"); !errdefs.IsNotFound(err) {
		t.Fatalf("refreshing an unknown source: %v", err)
	}

	fr, err := c.Find(ctx, client.FindOptions{Name: "nano*", VersionOptions: api.VersionOptions{AllVersions: true}})
	found := fr.Images
	if err != nil || len(found) != 2 || found[0].Source != "catalog" || found[0].Name != "NanoServer" {
		t.Fatalf("find %+v, %v", found, err)
	}
	if _, err := c.Find(ctx, client.FindOptions{VersionOptions: api.VersionOptions{RequiredVersion: "1.0", MinimumVersion: "1.0"}}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("RequiredVersion with MinimumVersion: %v", err)
	}

	// Install microsoft/iis, following the job: its parent comes first.
	stream, err := c.InstallFollow(ctx, api.InstallRequest{Name: "microsoft/iis"})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var types []string
	var result *api.Job
	for range 100000 {
		ev, err := stream.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %v: %v", types, err)
		}
		if len(types) == 0 || types[len(types)-1] != ev.Type {
			types = append(types, ev.Type)
		}
		if ev.Type == api.EventResult {
			result = ev.Job
		}
	}
	if len(types) < 2 || types[0] != api.EventState || types[len(types)-1] != api.EventResult || result == nil {
		t.Fatalf("events %v, result %+v", types, result)
	}
	if result.State != api.JobSucceeded || !regexp.MustCompile(`^Downloaded in \d+ hours?, \d+ minutes?, \d+ seconds?\.$`).MatchString(result.Message) {
		t.Fatalf("result %+v", result)
	}

	images, err := c.Images(ctx, client.ImagesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range images {
		names = append(names, img.Name)
		if img.Name == "microsoft/iis" && (img.ParentImage == nil || img.ParentImage.Name != "WindowsServerCore") {
			t.Fatalf("iis without its parent: %+v", img)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"WindowsServerCore", "microsoft/iis"}) {
		t.Fatalf("installed %v", names)
	}
	// The listing streamed from the provider's listing view is what the
	// server writes of the same images.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/images", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/images: %d, %v", resp.StatusCode, err)
	}
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(api.ImagesResponse{Images: images}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, want.Bytes()) {
		t.Fatalf("GET /v1/images:\n%s\nthe images encoded by the server:\n%s", raw, want.Bytes())
	}
	children, err := c.Images(ctx, client.ImagesOptions{ChildOf: "WindowsServerCore"})
	if err != nil || len(children) != 1 || children[0].Name != "microsoft/iis" {
		t.Fatalf("children %+v, %v", children, err)
	}

	// The base cannot go while iis depends on it.
	_, err = c.Remove(ctx, client.RemoveOptions{Name: "WindowsServerCore"})
	var ce *client.Error
	if !errdefs.IsConflict(err) || !errors.As(err, &ce) || ce.StatusCode != 409 ||
		!slices.ContainsFunc(ce.API.Dependents, func(d string) bool { return strings.Contains(d, "microsoft/iis") }) {
		t.Fatalf("removing the base: %v (%+v)", err, ce)
	}
	res, err := c.Remove(ctx, client.RemoveOptions{Name: "microsoft/iis"})
	if err != nil || len(res.Removed) != 1 || res.BytesFreed <= 0 {
		t.Fatalf("removing iis: %+v, %v", res, err)
	}
	res, err = c.Remove(ctx, client.RemoveOptions{Name: "WindowsServerCore"})
	if err != nil || len(res.Removed) != 1 {
		t.Fatalf("removing the base: %+v, %v", res, err)
	}

	jobs, err := c.Jobs(ctx)
	if err != nil || len(jobs) == 0 || jobs[0].State != api.JobSucceeded {
		t.Fatalf("jobs %+v, %v", jobs, err)
	}
	// Re-attaching to a finished job gives its state and its result.
	again, err := c.Events(ctx, jobs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	first, err := again.Next()
	if err != nil || first.Type != api.EventState {
		t.Fatalf("first event %+v, %v", first, err)
	}
	last, err := again.Next()
	if err != nil || last.Type != api.EventResult || last.Job == nil || last.Job.Message != result.Message {
		t.Fatalf("last event %+v, %v", last, err)
	}
	if _, err := again.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the result: %v", err)
	}
	if _, err := c.Job(ctx, "no-such-job"); !errdefs.IsNotFound(err) {
		t.Fatalf("unknown job: %v", err)
	}
	if _, err := c.Events(ctx, "no-such-job"); !errdefs.IsNotFound(err) {
		t.Fatalf("events of an unknown job: %v", err)
	}
	metrics, err := c.Metrics(ctx)
	if err != nil || !strings.Contains(metrics, "# TYPE providerd_installs_total counter") {
		t.Fatalf("metrics %q, %v", metrics, err)
	}
}

// engineClient runs a real provider behind this server and returns its
// client.
func engineClient(t *testing.T, sources []api.Source) *client.Client {
	t.Helper()
	p, err := engine.New(context.Background(), engine.Config{Root: t.TempDir(), DefaultSources: sources, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	s, err := serverprovider.New(p, serverprovider.WithLogger(quietLogger()), serverprovider.WithPolicy(listener.Open()))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	t.Cleanup(s.StopStreams)
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLifecycleAgainstTheEngine: save a streamed archive on one providerd,
// install it on another that has no source, then build an image from a
// container there, all through the Go client and this server.
func TestLifecycleAgainstTheEngine(t *testing.T) {
	ctx := t.Context()
	a := engineClient(t, []api.Source{{Name: "catalog", Location: newCatalogd(t)}})
	stream, err := a.InstallFollow(ctx, api.InstallRequest{Name: "microsoft/iis"})
	if err != nil {
		t.Fatal(err)
	}
	for range 100000 {
		if _, err := stream.Next(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	stream.Close()

	save, err := a.Save(ctx, api.SaveRequest{Name: "microsoft/iis"})
	if err != nil {
		t.Fatal(err)
	}
	archive, err := io.ReadAll(save)
	save.Close()
	if err != nil || len(archive) == 0 {
		t.Fatalf("save: %d bytes, %v", len(archive), err)
	}
	if img := save.Image(); img.Name != "microsoft/iis" || img.Version != "1.0.0.0" {
		t.Fatalf("saved image %+v", img)
	}
	if save.FileName != "" && save.FileName != "microsoft_iis-1-0-0-0.tar" {
		t.Fatalf("file name %q", save.FileName)
	}

	b := engineClient(t, nil)
	loaded, err := b.Load(ctx, strings.NewReader(string(archive)))
	if err != nil || len(loaded.Images) != 2 || loaded.Images[0].Name != "WindowsServerCore" || loaded.Images[1].Name != "microsoft/iis" {
		t.Fatalf("load %+v, %v", loaded, err)
	}
	if _, err := b.Load(ctx, strings.NewReader("not a tar at all")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("loading garbage: %v", err)
	}

	ctr, err := b.CreateContainer(ctx, api.ContainerCreateRequest{Image: "WindowsServerCore", Name: "web1"})
	if err != nil || ctr.Name != "web1" || len(ctr.ID) != 64 {
		t.Fatalf("create %+v, %v", ctr, err)
	}
	var tarball strings.Builder
	tw := tar.NewWriter(&tarball)
	_ = tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: 5, Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte("hello"))
	_ = tw.Close()
	if err := b.CopyToContainer(ctx, ctr.ID[:12], "/app", strings.NewReader(tarball.String())); err != nil {
		t.Fatal(err)
	}
	if _, err := b.StopContainer(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	img, err := b.Commit(ctx, api.CommitRequest{Container: "web1", Publisher: "Demo", Name: "DemoImage", Version: "1.0"})
	if err != nil || img.Publisher != "CN=Demo" || img.Version != "1.0.0.0" || img.IsOSImage || img.ParentImage == nil || img.ParentImage.Name != "WindowsServerCore" {
		t.Fatalf("commit %+v, %v", img, err)
	}
	if _, err := b.Commit(ctx, api.CommitRequest{Container: "web1", Publisher: "Demo", Name: "DemoImage", Version: "1.0"}); !errdefs.IsAlreadyExists(err) && !errdefs.IsConflict(err) {
		t.Fatalf("committing a taken name and version: %v", err)
	}
	_, err = b.Remove(ctx, client.RemoveOptions{Name: "WindowsServerCore"})
	var ce *client.Error
	if !errdefs.IsConflict(err) || !errors.As(err, &ce) || !slices.ContainsFunc(ce.API.Dependents, func(d string) bool { return strings.Contains(d, "web1") }) {
		t.Fatalf("removing the base with a container on it: %v (%+v)", err, ce)
	}
	list, err := b.Containers(ctx)
	if err != nil || len(list) != 1 || list[0].State != api.ContainerStopped {
		t.Fatalf("containers %+v, %v", list, err)
	}
	if err := b.RemoveContainer(ctx, "web1", false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Container(ctx, "web1"); !errdefs.IsNotFound(err) {
		t.Fatalf("removed container: %v", err)
	}
}

// TestTrustedSourceAgainstTheEngine: a source's trusted mark, given on the
// first start or by POST /v1/sources, comes back from GET /v1/sources and
// from a refresh.
func TestTrustedSourceAgainstTheEngine(t *testing.T) {
	ctx := t.Context()
	catalogURL := newCatalogd(t)
	c := engineClient(t, []api.Source{{Name: "catalog", Location: catalogURL, Trusted: true}})
	added, err := c.AddSource(ctx, api.Source{Name: "asks", Location: catalogURL})
	if err != nil || added.Trusted {
		t.Fatalf("add a source that is not trusted: %+v, %v", added, err)
	}
	if added, err = c.AddSource(ctx, api.Source{Name: "trusted", Location: catalogURL, Trusted: true}); err != nil || !added.Trusted {
		t.Fatalf("add a trusted source: %+v, %v", added, err)
	}
	sources, err := c.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range sources {
		got[s.Name] = s.Trusted
	}
	if want := map[string]bool{"asks": false, "catalog": true, "trusted": true}; !reflect.DeepEqual(got, want) {
		t.Fatalf("sources trusted %v, want %v", got, want)
	}
	for name, want := range map[string]bool{"catalog": true, "asks": false} {
		refreshed, err := c.RefreshSource(ctx, name)
		if err != nil || refreshed.Trusted != want || refreshed.Status == nil {
			t.Fatalf("refresh %s: %+v, %v; want trusted %v", name, refreshed, err, want)
		}
	}
}
