package e2e

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultProxy sits between providerd and catalogd, on 127.0.0.1, and does to
// blob downloads what a bad network or a bad server would: slow them down,
// cut them, corrupt them. It counts what it serves.
type faultProxy struct {
	URL string

	mu sync.Mutex
	// Settings, changed under mu while the proxy runs.
	bytesPerSec int64            // throttle of blob bodies; 0 = none
	corrupt     map[string]bool  // digests whose bytes get flipped
	cutAfter    int64            // cut a blob body after this many bytes...
	cuts        int              // ...this many times
	gets        map[string]int   // GETs per blob digest
	ranged      map[string]int   // GETs per blob digest with a Range header
	served      map[string]int64 // body bytes sent per blob digest
	hang        bool             // blob and manifest requests get no answer
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{
		corrupt: map[string]bool{},
		gets:    map[string]int{},
		ranged:  map[string]int{},
		served:  map[string]int64{},
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.ModifyResponse = func(resp *http.Response) error {
		dgst, ok := blobDigest(resp.Request)
		if !ok || resp.Request.Method != http.MethodGet || resp.StatusCode/100 != 2 {
			return nil
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.gets[dgst]++
		if resp.Request.Header.Get("Range") != "" {
			p.ranged[dgst]++
		}
		fb := &faultBody{p: p, dgst: dgst, rc: resp.Body, rate: p.bytesPerSec, corrupt: p.corrupt[dgst], start: time.Now(), limit: -1}
		if p.cuts > 0 {
			p.cuts--
			fb.limit = p.cutAfter
		}
		resp.Body = fb
		return nil
	}
	rp.ErrorLog = nil
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		hang := p.hang
		p.mu.Unlock()
		if hang && (strings.Contains(r.URL.Path, "/blobs/") || strings.Contains(r.URL.Path, "/manifests/")) {
			select {
			case <-r.Context().Done():
			case <-stop:
			case <-time.After(2 * time.Minute):
			}
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		close(stop)
		srv.Close()
	})
	p.URL = srv.URL
	return p
}

// blobDigest returns the digest of a /v2/<name>/blobs/<digest> request.
func blobDigest(r *http.Request) (string, bool) {
	dir, last := path.Split(r.URL.Path)
	if !strings.HasSuffix(dir, "/blobs/") || !strings.Contains(last, ":") {
		return "", false
	}
	return last, true
}

func (p *faultProxy) set(f func(p *faultProxy)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *faultProxy) counts(dgst string) (gets, ranged int, served int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gets[dgst], p.ranged[dgst], p.served[dgst]
}

var errCut = errors.New("connection cut by the test proxy")

// faultBody is a blob body with the proxy's faults applied.
type faultBody struct {
	p       *faultProxy
	dgst    string
	rc      io.ReadCloser
	rate    int64
	corrupt bool
	start   time.Time
	n       int64
	limit   int64 // cut after this many bytes; -1 = never
}

func (b *faultBody) Read(buf []byte) (int, error) {
	if b.limit >= 0 && b.n >= b.limit {
		return 0, errCut
	}
	if b.limit >= 0 && int64(len(buf)) > b.limit-b.n {
		buf = buf[:b.limit-b.n]
	}
	if b.rate > 0 && len(buf) > 32<<10 {
		buf = buf[:32<<10]
	}
	n, err := b.rc.Read(buf)
	if b.corrupt && n > 0 {
		buf[0] ^= 0xff
	}
	b.n += int64(n)
	b.p.mu.Lock()
	b.p.served[b.dgst] += int64(n)
	b.p.mu.Unlock()
	if b.rate > 0 {
		// Sleep until the bytes so far fit the rate.
		if ahead := time.Duration(float64(b.n)/float64(b.rate)*float64(time.Second)) - time.Since(b.start); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	return n, err
}

func (b *faultBody) Close() error { return b.rc.Close() }
