package provider

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

// The faults a test mirror has.
const (
	mirrorOK       int32 = iota
	mirrorNotFound       // every blob and manifest is 404
	mirrorHang           // every request hangs until the client gives up
	mirrorDown           // every request is a 503
)

// faultyRegistry serves a catalog's handler, or fails as mode says.
type faultyRegistry struct {
	next     http.Handler
	mode     atomic.Int32
	requests atomic.Int64
	stop     chan struct{}
	// moved, when set, is a tag whose manifest request gets the
	// manifest of another tag: a tag that moved at the mirror.
	moved atomic.Pointer[[2]string]
}

func newFaultyRegistry(t *testing.T, next http.Handler) (*faultyRegistry, *httptest.Server) {
	f := &faultyRegistry{next: next, stop: make(chan struct{})}
	srv := httptest.NewServer(f)
	t.Cleanup(func() {
		close(f.stop)
		srv.Close()
	})
	return f, srv
}

func (f *faultyRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if m := f.moved.Load(); m != nil && strings.HasSuffix(r.URL.Path, "/manifests/"+m[0]) {
		r.URL.Path = strings.TrimSuffix(r.URL.Path, m[0]) + m[1]
	}
	content := strings.Contains(r.URL.Path, "/blobs/") || strings.Contains(r.URL.Path, "/manifests/")
	switch f.mode.Load() {
	case mirrorNotFound:
		if content {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errors":[{"code":"BLOB_UNKNOWN","message":"not here"}]}`))
			return
		}
	case mirrorHang:
		select {
		case <-r.Context().Done():
		case <-f.stop:
		case <-time.After(testTimeout):
		}
		return
	case mirrorDown:
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	f.next.ServeHTTP(w, r)
}

// mirrorEnv is a provider whose source "catalog" is e.cat (behind up, which
// can fail) with one mirror: a second catalog seeded alike (so with the
// same digests) behind mirror.
type mirrorEnv struct {
	*env
	up, mirror     *faultyRegistry
	upURL, mirURL  string
	mirrorCat      *catalogEnv
	log            *logtest.Hook
	mirrorSettings api.SourceMirror
}

func newMirrorEnv(t *testing.T, upMode, mirrorMode int32) *mirrorEnv {
	t.Helper()
	me := &mirrorEnv{env: &env{t: t, cat: newCatalog(t, testBaseLayerSize), root: filepath.Join(t.TempDir(), "provider")}}
	me.mirrorCat = newCatalog(t, testBaseLayerSize)
	var upSrv, mirSrv *httptest.Server
	me.up, upSrv = newFaultyRegistry(t, me.cat.srv.Config.Handler)
	me.mirror, mirSrv = newFaultyRegistry(t, me.mirrorCat.srv.Config.Handler)
	me.up.mode.Store(upMode)
	me.mirror.mode.Store(mirrorMode)
	me.upURL, me.mirURL = upSrv.URL, mirSrv.URL
	me.mirrorSettings = api.SourceMirror{Location: me.mirURL}

	logger := quietLogger()
	me.log = logtest.NewLocal(logger)
	p, err := New(context.Background(), Config{
		Root:           me.root,
		DefaultSources: []api.Source{{Name: "catalog", Location: me.upURL, Mirrors: []api.SourceMirror{me.mirrorSettings}}},
		Logger:         logger,
		MirrorTimeout:  300 * time.Millisecond,
		tune: func(p *Provider) {
			p.retry = retryPolicy{initial: 10 * time.Millisecond, max: 100 * time.Millisecond, attempts: 5, window: time.Minute}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	me.p = p
	return me
}

// installNano installs NanoServer 10.0.10586.0 and fails the test unless it
// succeeded.
func (me *mirrorEnv) installNano() {
	me.t.Helper()
	if jb := me.install(nano10586()); jb.State != api.JobSucceeded {
		me.t.Fatalf("install ended %s: %+v", jb.State, jb.Error)
	}
}

// fetched counts the GETs of each blob of NanoServer 10.0.10586.0 at c.
func fetched(c *catalogEnv) map[digest.Digest]int {
	out := map[digest.Digest]int{}
	for _, d := range c.blobsOf("nanoserver:10.0.10586.0") {
		out[d], _, _ = c.tap.counts(d)
	}
	return out
}

func (me *mirrorEnv) securityEvents() []*logrus.Entry {
	var out []*logrus.Entry
	for _, e := range me.log.AllEntries() {
		if e.Data["event"] == "security" {
			out = append(out, e)
		}
	}
	return out
}

func TestMirrorServesContentByDigest(t *testing.T) {
	me := newMirrorEnv(t, mirrorOK, mirrorOK)
	me.installNano()
	for d, n := range fetched(me.cat) {
		if n != 0 {
			t.Errorf("the location served blob %s %d times, want 0: the mirror has it", d, n)
		}
	}
	for d, n := range fetched(me.mirrorCat) {
		if n != 1 {
			t.Errorf("the mirror served blob %s %d times, want 1", d, n)
		}
	}
	item := me.cat.item("nanoserver:10.0.10586.0")
	me.cat.tap.mu.Lock()
	n := me.cat.tap.paths["/v2/nanoserver/manifests/"+item.Digest.String()]
	me.cat.tap.mu.Unlock()
	if n != 0 {
		t.Errorf("the location served the manifest by digest %d times, want 0", n)
	}
	if ev := me.securityEvents(); len(ev) != 0 {
		t.Errorf("security events: %v", ev)
	}
}

// TestMirrorLearnsTags: an install asks the mirror for the manifest by its
// tag, so that a pull-through cache records the tag, and takes its answer
// only when it is the digest the source's index names.
func TestMirrorLearnsTags(t *testing.T) {
	paths := func(c *catalogEnv, p string) int {
		c.tap.mu.Lock()
		defer c.tap.mu.Unlock()
		return c.tap.paths[p]
	}
	item := func(c *catalogEnv) string { return c.item("nanoserver:10.0.10586.0").Digest.String() }

	me := newMirrorEnv(t, mirrorOK, mirrorOK)
	me.installNano()
	if n := paths(me.mirrorCat, "/v2/nanoserver/manifests/10.0.10586.0"); n != 1 {
		t.Errorf("the mirror was asked for the manifest by its tag %d times, want 1", n)
	}
	if n := paths(me.mirrorCat, "/v2/nanoserver/manifests/"+item(me.mirrorCat)); n != 0 {
		t.Errorf("the mirror was asked for the manifest by digest %d times, want 0: its tag's answer is the digest", n)
	}

	// A tag that moved at the mirror: its manifest is not taken.
	moved := newMirrorEnv(t, mirrorOK, mirrorOK)
	moved.mirror.moved.Store(&[2]string{"10.0.10586.0", "10.0.14393.0"})
	moved.installNano()
	if n := paths(moved.mirrorCat, "/v2/nanoserver/manifests/"+item(moved.mirrorCat)); n != 1 {
		t.Errorf("after a moved tag, the mirror was asked for the manifest by digest %d times, want 1", n)
	}
	imgs, err := moved.p.Images(context.Background(), GetOptions{})
	if err != nil || len(imgs) != 1 || imgs[0].Digest != item(moved.cat) {
		t.Errorf("installed %+v (%v), want the source's NanoServer 10.0.10586.0", imgs, err)
	}
}

func TestMirrorNotFoundFallsBackToLocation(t *testing.T) {
	me := newMirrorEnv(t, mirrorOK, mirrorNotFound)
	me.installNano()
	for d, n := range fetched(me.cat) {
		if n != 1 {
			t.Errorf("the location served blob %s %d times, want 1", d, n)
		}
	}
	if me.mirror.requests.Load() == 0 {
		t.Error("the mirror was never asked")
	}
}

func TestMirrorWrongBytesAreRefused(t *testing.T) {
	me := newMirrorEnv(t, mirrorOK, mirrorOK)
	layer := me.cat.blobsOf("nanoserver:10.0.10586.0")[1]
	me.mirrorCat.tap.mu.Lock()
	me.mirrorCat.tap.corrupt = layer.String()
	me.mirrorCat.tap.mu.Unlock()

	jb, events := func() (api.Job, []api.JobEvent) {
		jb, err := me.p.Install(context.Background(), nano10586())
		if err != nil {
			t.Fatal(err)
		}
		return watchAll(t, me.p, jb.ID)
	}()
	if jb.State != api.JobSucceeded {
		t.Fatalf("install ended %s: %+v", jb.State, jb.Error)
	}
	if n, _, _ := me.cat.tap.counts(layer); n != 1 {
		t.Errorf("the location served the corrupt layer %d times, want 1", n)
	}
	if n, _, _ := me.mirrorCat.tap.counts(layer); n != 1 {
		t.Errorf("the mirror was asked for the layer %d times, want 1 (then passed over)", n)
	}
	ev := me.securityEvents()
	if len(ev) != 1 || ev[0].Level != logrus.ErrorLevel || ev[0].Data["mirror"] != me.mirURL || !strings.Contains(ev[0].Data["object"].(string), layer.String()) {
		t.Errorf("security events %+v, want one error naming the mirror and the layer", ev)
	}
	warned := false
	for _, e := range events {
		if e.Type == api.EventWarning && strings.Contains(e.Message, "mirror") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning event tells of the refused mirror bytes: %+v", events)
	}
	l := me.cat.manifest("nanoserver:10.0.10586.0").Layers[0]
	if ok, err := me.p.verifyBlob(context.Background(), ocispec.Descriptor{Digest: l.Digest, Size: l.Size}); !ok || err != nil {
		t.Errorf("layer verified %v, %v", ok, err)
	}
}

func TestMirrorThatHangsTimesOut(t *testing.T) {
	me := newMirrorEnv(t, mirrorOK, mirrorHang)
	start := time.Now()
	me.installNano()
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("install took %s behind a hanging mirror with a 300ms time-out", d)
	}
	for d, n := range fetched(me.cat) {
		if n != 1 {
			t.Errorf("the location served blob %s %d times, want 1", d, n)
		}
	}
	// Unreachable: passed over for a while, so one time-out, not one per
	// blob. The manifest and the blobs run one after the other, and the
	// blobs in parallel, so at most a few requests reach it.
	if n := me.mirror.requests.Load(); n > 4 {
		t.Errorf("the hanging mirror was asked %d times", n)
	}
}

func TestMirrorWhileLocationIsDown(t *testing.T) {
	me := newMirrorEnv(t, mirrorDown, mirrorOK)
	ctx := context.Background()
	res, err := me.p.Find(ctx, FindOptions{Name: "NanoServer", VersionOptions: api.VersionOptions{AllVersions: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) == 0 {
		t.Fatalf("find answered no image from the mirror: %+v", res)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "unreachable") || !strings.Contains(res.Warnings[0], me.mirURL) {
		t.Errorf("warnings %q, want one that says the entries come from the mirror %s", res.Warnings, me.mirURL)
	}
	srcs, err := me.p.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := srcs[0].Status; st == nil || st.Origin != me.mirURL || st.Mode != "crawl" {
		t.Errorf("status %+v, want the index crawled from the mirror", st)
	}
	me.installNano()
	for d, n := range fetched(me.cat) {
		if n != 0 {
			t.Errorf("the location (down) served blob %s %d times", d, n)
		}
	}

	// Back up: its own index replaces the mirror's.
	me.up.mode.Store(mirrorOK)
	s, err := me.p.RefreshSource(ctx, "catalog")
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Status; st.Origin != "" || st.Mode != "feed" || !st.Complete {
		t.Errorf("status after the location is back %+v, want its own feed index", st)
	}
	res, err = me.p.Find(ctx, FindOptions{Name: "NanoServer"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) == 0 || len(res.Warnings) != 0 {
		t.Errorf("find after the location is back: %d images, warnings %q", len(res.Images), res.Warnings)
	}
}

// TestMirrorNamespace has a mirror that holds the source's repositories
// under a prefix, as a Harbor proxy project does.
func TestMirrorNamespace(t *testing.T) {
	e := &env{t: t, cat: newCatalog(t, testBaseLayerSize), root: filepath.Join(t.TempDir(), "provider")}
	mirrorCat := newCatalog(t, testBaseLayerSize)
	var unprefixed atomic.Int64
	project := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, "/v2/proxy-project/"); ok {
			r.URL.Path = "/v2/" + rest
		} else if r.URL.Path != "/v2/" {
			unprefixed.Add(1)
			http.NotFound(w, r)
			return
		}
		mirrorCat.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(project.Close)
	p, err := New(context.Background(), Config{
		Root: e.root,
		DefaultSources: []api.Source{{Name: "catalog", Location: e.cat.srv.URL,
			Mirrors: []api.SourceMirror{{Location: project.URL, Namespace: "proxy-project"}}}},
		Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	e.p = p
	if jb := e.install(nano10586()); jb.State != api.JobSucceeded {
		t.Fatalf("install ended %s: %+v", jb.State, jb.Error)
	}
	for d, n := range fetched(mirrorCat) {
		if n != 1 {
			t.Errorf("the mirror served blob %s %d times under its namespace, want 1", d, n)
		}
	}
	for d, n := range fetched(e.cat) {
		if n != 0 {
			t.Errorf("the location served blob %s %d times, want 0", d, n)
		}
	}
	if n := unprefixed.Load(); n != 0 {
		t.Errorf("%d requests reached the mirror without its namespace", n)
	}
}

// TestMirrorCredentials: a mirror's own credentials answer its challenge,
// and go to it alone, never to the source's location.
func TestMirrorCredentials(t *testing.T) {
	e := &env{t: t, cat: newCatalog(t, testBaseLayerSize), root: filepath.Join(t.TempDir(), "provider")}
	mirrorCat := newCatalog(t, testBaseLayerSize)
	var challenged, leaked atomic.Int64
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "cache" || p != "s3cret" {
			challenged.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="mirror"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mirrorCat.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(mirror.Close)
	location := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Add(1)
		}
		e.cat.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(location.Close)
	p, err := New(context.Background(), Config{
		Root: e.root,
		DefaultSources: []api.Source{{Name: "catalog", Location: location.URL,
			Mirrors: []api.SourceMirror{{Location: mirror.URL, Username: "cache", Password: "s3cret"}}}},
		Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	e.p = p
	if jb := e.install(nano10586()); jb.State != api.JobSucceeded {
		t.Fatalf("install ended %s: %+v", jb.State, jb.Error)
	}
	for d, n := range fetched(mirrorCat) {
		if n != 1 {
			t.Errorf("the mirror served blob %s %d times with its credentials, want 1", d, n)
		}
	}
	if challenged.Load() == 0 {
		t.Error("the mirror never challenged: the test proves nothing")
	}
	if n := leaked.Load(); n != 0 {
		t.Errorf("%d requests to the source's location carried credentials", n)
	}
}

func TestSourceMirrorsAreValidated(t *testing.T) {
	e := newEnv(t, testBaseLayerSize)
	ctx := context.Background()
	for _, m := range [][]api.SourceMirror{
		{{Location: "ftp://x"}},
		{{Location: "http://m"}, {Location: "http://m/"}},
		{{Location: e.cat.srv.URL}},
		{{Location: "http://m", Capabilities: []string{"push"}}},
		{{Location: "http://m", Username: "u"}},
		{{Location: "http://m", Namespace: "Bad Name"}},
		{{Location: "http://m", Namespace: "proxy", Capabilities: []string{api.MirrorPull, api.MirrorResolve}}},
	} {
		_, err := e.p.AddSource(ctx, api.Source{Name: "bad", Location: e.cat.srv.URL, Mirrors: m})
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("mirrors %+v: %v, want InvalidArgument", m, err)
		}
	}
	if _, err := e.p.sourceSetting(ctx, "bad"); !errdefs.IsNotFound(err) {
		t.Errorf("a refused source was kept: %v", err)
	}
	added, err := e.p.AddSource(ctx, api.Source{Name: "m", Location: "http://127.0.0.1:1", Mirrors: []api.SourceMirror{
		{Location: e.cat.srv.URL, Username: "u", Password: "secret", Capabilities: []string{api.MirrorPull}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if added.Mirrors[0].Password != "" || added.Mirrors[0].Username != "u" {
		t.Errorf("added %+v", added.Mirrors)
	}
	list, err := e.p.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.Name == "m" && (len(s.Mirrors) != 1 || s.Mirrors[0].Password != "" || s.Mirrors[0].Capabilities[0] != api.MirrorPull) {
			t.Errorf("listed %+v", s.Mirrors)
		}
	}
	kept, err := e.p.sourceSetting(ctx, "m")
	if err != nil || kept.Mirrors[0].Password != "secret" {
		t.Errorf("the stored mirror lost its password: %+v %v", kept.Mirrors, err)
	}
}
