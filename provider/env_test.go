package provider

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/catalog/publish"
	servercatalog "github.com/containerprovider/containerprovider/server/catalog"
	"github.com/containerprovider/containerprovider/store/content"
	"github.com/containerprovider/containerprovider/store/meta"
)

// testTimeout bounds every wait of these tests.
const testTimeout = 2 * time.Minute

// Sizes of the seeded test catalog: uncompressed layers, so that a layer
// blob is as large as its tar.
const (
	testBaseLayerSize = 256 << 10
	testAppLayerSize  = 8 << 10
)

// catalogEnv is a real catalogd handler over httptest, with a real
// registry seeded like `catalogd seed`, behind a tap that counts and
// tampers with blob downloads.
type catalogEnv struct {
	t    *testing.T
	srv  *httptest.Server
	reg  *catalog.Registry
	tap  *tap
	seed map[string]publish.SeedItem // by "repository:version"
}

func newCatalog(t *testing.T, baseLayerSize int64) *catalogEnv {
	t.Helper()
	dir := t.TempDir()
	db, err := meta.Open(filepath.Join(dir, "catalog.db"), meta.WithNoSync())
	if err != nil {
		t.Fatal(err)
	}
	cs, err := content.NewStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	reg := catalog.NewRegistry(cs, db)
	rep, err := publish.Seed(context.Background(), reg, publish.SeedOptions{
		BaseLayerSize: baseLayerSize,
		AppLayerSize:  testAppLayerSize,
		Compression:   publish.CompressionNone,
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := servercatalog.New(reg, servercatalog.WithLogger(quietLogger()), servercatalog.WithInsecureDev(true))
	if err != nil {
		t.Fatal(err)
	}
	tp := newTap(s)
	srv := httptest.NewServer(tp)
	t.Cleanup(func() {
		tp.stopThrottle()
		srv.Close()
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	env := &catalogEnv{t: t, srv: srv, reg: reg, tap: tp, seed: map[string]publish.SeedItem{}}
	for _, it := range rep.Items {
		env.seed[it.Repository+":"+it.Version] = it
	}
	return env
}

// source is the api.Source of the catalog.
func (c *catalogEnv) source(name string) api.Source {
	return api.Source{Name: name, Location: c.srv.URL}
}

// item is the seeded image repo:version.
func (c *catalogEnv) item(ref string) publish.SeedItem {
	c.t.Helper()
	it, ok := c.seed[ref]
	if !ok {
		c.t.Fatalf("no seeded image %s", ref)
	}
	return it
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// tap wraps the catalog handler. For blob GETs it counts requests, Range
// requests and bytes sent per digest, and can corrupt a blob, cut the
// connection in the middle of a blob, or slow every blob down.
type tap struct {
	next http.Handler

	mu        sync.Mutex
	gets      map[string]int
	paths     map[string]int // every request, by path
	ranges    map[string]int
	sent      map[string]int64
	corrupt   string
	cutDigest string
	cutAfter  int64
	cutsLeft  int
	throttle  time.Duration // pause after each 32 KiB, 0 for none
	stop      chan struct{}
	serving   int // blob GETs being served
}

func newTap(next http.Handler) *tap {
	return &tap{
		next:   next,
		gets:   map[string]int{},
		paths:  map[string]int{},
		ranges: map[string]int{},
		sent:   map[string]int64{},
		stop:   make(chan struct{}),
	}
}

// blobOf returns the digest of a blob GET.
func blobOf(r *http.Request) (string, bool) {
	if r.Method != http.MethodGet {
		return "", false
	}
	i := strings.LastIndex(r.URL.Path, "/blobs/")
	if i < 0 || strings.Contains(r.URL.Path[i+len("/blobs/"):], "/") {
		return "", false
	}
	return r.URL.Path[i+len("/blobs/"):], true
}

func (tp *tap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tp.mu.Lock()
	tp.paths[r.URL.Path]++
	tp.mu.Unlock()
	d, ok := blobOf(r)
	if !ok {
		tp.next.ServeHTTP(w, r)
		return
	}
	tp.mu.Lock()
	tp.gets[d]++
	if r.Header.Get("Range") != "" {
		tp.ranges[d]++
	}
	tw := &tapWriter{ResponseWriter: w, tp: tp, r: r, digest: d, corrupt: tp.corrupt == d, throttle: tp.throttle}
	if tp.cutDigest == d && tp.cutsLeft > 0 {
		tp.cutsLeft--
		tw.cutAt = tp.cutAfter
	}
	tp.serving++
	tp.mu.Unlock()
	defer func() {
		tp.mu.Lock()
		tp.serving--
		tp.mu.Unlock()
	}()
	tp.next.ServeHTTP(tw, r)
}

// waitIdle waits until no blob GET is being served, so that counters reset
// afterwards see none of the bytes of earlier requests.
func (tp *tap) waitIdle(t *testing.T) {
	t.Helper()
	for range 1000 {
		tp.mu.Lock()
		n := tp.serving
		tp.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("blob requests still being served after 10s")
}

func (tp *tap) counts(d digest.Digest) (gets, ranges int, sent int64) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.gets[d.String()], tp.ranges[d.String()], tp.sent[d.String()]
}

func (tp *tap) reset() {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	clear(tp.gets)
	clear(tp.ranges)
	clear(tp.sent)
}

func (tp *tap) setThrottle(d time.Duration) {
	tp.mu.Lock()
	tp.throttle = d
	tp.mu.Unlock()
}

func (tp *tap) stopThrottle() {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.throttle = 0
	select {
	case <-tp.stop:
	default:
		close(tp.stop)
	}
}

// tapWriter is the response writer of one blob GET.
type tapWriter struct {
	http.ResponseWriter
	tp       *tap
	r        *http.Request
	digest   string
	corrupt  bool
	throttle time.Duration
	cutAt    int64 // cut the connection after this many body bytes; 0: never
	written  int64
}

const tapChunk = 32 << 10

func (tw *tapWriter) Write(p []byte) (int, error) {
	if tw.corrupt && len(p) > 0 {
		q := append([]byte(nil), p...)
		q[0] ^= 0xff
		p = q
		tw.corrupt = false
	}
	total := 0
	for len(p) > 0 {
		n := min(len(p), tapChunk)
		if tw.cutAt > 0 && tw.written+int64(n) > tw.cutAt {
			n = int(tw.cutAt - tw.written)
		}
		m, err := tw.ResponseWriter.Write(p[:n])
		total += m
		tw.written += int64(m)
		tw.tp.mu.Lock()
		tw.tp.sent[tw.digest] += int64(m)
		tw.tp.mu.Unlock()
		if err != nil {
			return total, err
		}
		p = p[n:]
		if tw.cutAt > 0 && tw.written >= tw.cutAt {
			if f, ok := tw.ResponseWriter.(http.Flusher); ok {
				f.Flush()
			}
			panic(http.ErrAbortHandler)
		}
		if tw.throttle > 0 {
			if f, ok := tw.ResponseWriter.(http.Flusher); ok {
				f.Flush()
			}
			select {
			case <-time.After(tw.throttle):
			case <-tw.r.Context().Done():
				return total, tw.r.Context().Err()
			case <-tw.tp.stop:
			}
		}
	}
	return total, nil
}

func (tw *tapWriter) Flush() {
	if f, ok := tw.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// env is a provider over a root in t.TempDir(), with the catalog as its
// default source.
type env struct {
	t    *testing.T
	cat  *catalogEnv
	root string
	p    *Provider
}

func newEnv(t *testing.T, baseLayerSize int64, tune ...func(*Provider)) *env {
	t.Helper()
	e := &env{t: t, cat: newCatalog(t, baseLayerSize), root: filepath.Join(t.TempDir(), "provider")}
	e.p = e.open(tune...)
	return e
}

// open starts a provider on e.root; the test closes it at its end.
func (e *env) open(tune ...func(*Provider)) *Provider {
	e.t.Helper()
	cfg := Config{
		Root:           e.root,
		DefaultSources: []api.Source{e.cat.source("catalog")},
		Logger:         quietLogger(),
		HTTPClient:     e.cat.srv.Client(),
		tune: func(p *Provider) {
			p.retry = retryPolicy{initial: 10 * time.Millisecond, max: 100 * time.Millisecond, attempts: 10, window: time.Minute}
			for _, f := range tune {
				f(p)
			}
		},
	}
	p, err := New(context.Background(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if err := p.Close(); err != nil {
			e.t.Error(err)
		}
	})
	return p
}

// install starts an install and waits for its result.
func (e *env) install(req api.InstallRequest) api.Job {
	e.t.Helper()
	jb, err := e.p.Install(context.Background(), req)
	if err != nil {
		e.t.Fatalf("Install(%+v): %v", req, err)
	}
	return e.wait(jb.ID)
}

// wait watches job id until its result event and returns the final job.
func (e *env) wait(id string) api.Job {
	e.t.Helper()
	jb, _ := watchAll(e.t, e.p, id)
	return jb
}

// watchAll collects every event of job id and returns the job of the
// result event.
func watchAll(t *testing.T, p *Provider, id string) (api.Job, []api.JobEvent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ch, err := p.Watch(ctx, id)
	if err != nil {
		t.Fatalf("Watch(%s): %v", id, err)
	}
	var events []api.JobEvent
	for ev := range ch {
		events = append(events, ev)
	}
	if ctx.Err() != nil {
		t.Fatalf("job %s did not end within %s", id, testTimeout)
	}
	if len(events) == 0 {
		t.Fatalf("job %s: no event", id)
	}
	last := events[len(events)-1]
	if last.Type != api.EventResult || last.Job == nil {
		t.Fatalf("job %s: last event %+v, want a result with the job", id, last)
	}
	return *last.Job, events
}

// blobs lists the digests committed in the provider's content store.
func (e *env) blobs() []digest.Digest {
	e.t.Helper()
	var out []digest.Digest
	err := e.p.cs.Walk(context.Background(), func(info content.Info) error {
		out = append(out, info.Digest)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// record reads the image record of d.
func (e *env) record(d digest.Digest) (imageRecord, bool) {
	e.t.Helper()
	var rec imageRecord
	var ok bool
	err := e.p.db.View(context.Background(), func(tx *bolt.Tx) error {
		var err error
		rec, ok, err = getImage(tx, d)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return rec, ok
}

// leases lists the leases of every job.
func (e *env) leases() []string {
	e.t.Helper()
	var out []string
	err := e.p.db.View(context.Background(), func(tx *bolt.Tx) error {
		l := meta.GetLeasesBucket(tx)
		return l.ForEach(func(job, _ []byte) error {
			return l.Bucket(job).ForEach(func(d, _ []byte) error {
				out = append(out, string(job)+"/"+string(d))
				return nil
			})
		})
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// mustClass fails the test unless err has class want.
func mustClass(t *testing.T, err error, want error) {
	t.Helper()
	if err == nil || !errors.Is(err, want) {
		t.Fatalf("error %v, want class %v", err, want)
	}
}
