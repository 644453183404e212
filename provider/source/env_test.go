package source

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/catalog/publish"
	"github.com/containerprovider/containerprovider/provider/mirror"
	catalogserver "github.com/containerprovider/containerprovider/server/catalog"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

const testSourceName = "catalog"

// catalogEnv is a real catalogd handler over a real registry (bbolt file and
// content store in t.TempDir()), seeded like `catalogd seed` with small
// layers.
type catalogEnv struct {
	reg     *catalog.Registry
	handler http.Handler
	seed    publish.SeedReport
}

func newCatalogEnv(t *testing.T) *catalogEnv {
	t.Helper()
	dir := t.TempDir()
	db, err := meta.Open(filepath.Join(dir, "catalog.db"), meta.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	cs, err := content.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	reg := catalog.NewRegistry(cs, db)
	s, err := catalogserver.New(reg, catalogserver.WithLogger(quietLogger()), catalogserver.WithInsecureDev(true))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := publish.Seed(context.Background(), reg, publish.SeedOptions{BaseLayerSize: 2048, AppLayerSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Items) != 20 {
		t.Fatalf("seed published %d images, want 20", len(rep.Items))
	}
	return &catalogEnv{reg: reg, handler: s, seed: rep}
}

// item returns the seeded image of repo and version.
func (e *catalogEnv) item(t *testing.T, repo, version string) publish.SeedItem {
	t.Helper()
	for _, it := range e.seed.Items {
		if it.Repository == repo && it.Version == version {
			return it
		}
	}
	t.Fatalf("no seeded image %s:%s", repo, version)
	return publish.SeedItem{}
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// serve starts h on loopback for the test's duration.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// newTestClient is a client of the source at url, named testSourceName.
func newTestClient(t *testing.T, url string, opts ...Opt) *Client {
	t.Helper()
	return newTestClientOf(t, api.Source{Name: testSourceName, Location: url}, opts...)
}

func newTestClientOf(t *testing.T, src api.Source, opts ...Opt) *Client {
	t.Helper()
	c, err := New(src, append([]Opt{WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// requestLog counts the requests a handler sees, by path, and keeps their
// statuses.
type requestLog struct {
	next http.Handler
	mu   sync.Mutex
	n    map[string]int
	// statuses of the requests, by path, in order.
	statuses map[string][]int
	// methods counts the requests by method and path prefix.
	methods map[string]map[string]int
}

func logRequests(next http.Handler) *requestLog {
	return &requestLog{next: next, n: map[string]int{}, statuses: map[string][]int{}, methods: map[string]map[string]int{}}
}

// countMethod counts the requests of method whose path starts with prefix.
func (l *requestLog) countMethod(method, prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	total := 0
	for p, n := range l.methods[method] {
		if strings.HasPrefix(p, prefix) {
			total += n
		}
	}
	return total
}

// ServeHTTP counts the request when it arrives: the client may have its
// answer, and the test may read the count, before the handler returns.
func (l *requestLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	l.n[r.URL.Path]++
	if l.methods[r.Method] == nil {
		l.methods[r.Method] = map[string]int{}
	}
	l.methods[r.Method][r.URL.Path]++
	l.mu.Unlock()
	sw := &statusWriter{ResponseWriter: w, record: func(status int) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.statuses[r.URL.Path] = append(l.statuses[r.URL.Path], status)
	}}
	l.next.ServeHTTP(sw, r)
	sw.WriteHeader(http.StatusOK) // records 200 for a handler that wrote nothing
}

func (l *requestLog) count(path string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[path]
}

// countPrefix counts the requests whose path starts with prefix.
func (l *requestLog) countPrefix(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	total := 0
	for p, n := range l.n {
		if strings.HasPrefix(p, prefix) {
			total += n
		}
	}
	return total
}

func (l *requestLog) lastStatus(path string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.statuses[path]
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}

// statusWriter records the status of a response as its header goes out,
// before the client can see it.
type statusWriter struct {
	http.ResponseWriter
	record  func(status int)
	written bool
}

func (w *statusWriter) WriteHeader(status int) {
	if !w.written {
		w.written = true
		w.record(status)
		w.ResponseWriter.WriteHeader(status)
	}
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

// withoutFind answers /v2/_find with 404, as a registry without the find
// extension does, and passes everything else to next.
func withoutFind(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/_find" || r.URL.Path == "/v2/_find/changes" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"errors":[{"code":"NOT_FOUND","message":"404 page not found"}]}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// rewrite runs next into a recorder, lets edit change the recorded response
// of the requests that match, and sends it.
func rewrite(next http.Handler, match func(*http.Request) bool, edit func(h http.Header, body []byte) []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !match(r) {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body := edit(rec.Header(), bytes.Clone(rec.Body.Bytes()))
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
}

func digestOf(t *testing.T, s string) digest.Digest {
	t.Helper()
	d, err := digest.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func isManifestRequest(r *http.Request) bool { return strings.Contains(r.URL.Path, "/manifests/") }

// newTestMirror is an empty mirror of the source name in a database of its
// own.
func newTestMirror(t *testing.T, name string) *mirror.Mirror {
	t.Helper()
	db, err := meta.Open(filepath.Join(t.TempDir(), "provider.db"), meta.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return mirror.New(db, name)
}

// syncedEntries syncs a new mirror of c's source and lists what it holds.
func syncedEntries(ctx context.Context, t *testing.T, c *Client) ([]api.FindEntry, error) {
	t.Helper()
	m := newTestMirror(t, c.Name())
	if err := c.Sync(ctx, m); err != nil {
		return nil, err
	}
	return mirrorEntries(t, m), nil
}

// mirrorEntries lists every entry of m, every version, sorted as Find
// sorts them.
func mirrorEntries(t *testing.T, m *mirror.Mirror) []api.FindEntry {
	t.Helper()
	es, err := m.Candidates(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return find.Sort(es)
}
