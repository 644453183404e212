package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/crypto/bcrypt"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

func TestAuth(t *testing.T) {
	// Its 20 failures from one address would reach the limit on failed
	// authentications, which TestAuthFailureLimit covers.
	e := newTestEnv(t, WithAuthFailureLimit(1000, time.Minute))
	blob := []byte("pushed with credentials")
	d := digest.FromBytes(blob)
	push := "/v2/repo/blobs/uploads/?digest=" + d.String()

	for _, tc := range []struct {
		name     string
		opts     []reqOpt
		tokenErr string
	}{
		{"no credentials", nil, ""},
		{"wrong password", []reqOpt{withBasic(testUser, "wrong")}, ""},
		{"unknown user", []reqOpt{withBasic("nobody", testPassword)}, ""},
		{"empty user", []reqOpt{withBasic("", testPassword)}, ""},
		{"a bearer token not of ours", []reqOpt{withHeader("Authorization", "Bearer abc")}, "invalid_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := bearer(e.srv.URL, "scope", "repository:repo:pull,push")
			if tc.tokenErr != "" {
				want = bearer(e.srv.URL, "scope", "repository:repo:pull,push", "error", tc.tokenErr)
			}
			e.do(http.MethodPost, push, bytes.NewReader(blob), tc.opts...).
				wantHeader(t, "WWW-Authenticate", want).
				wantError(t, http.StatusUnauthorized, CodeUnauthorized)
			for _, m := range []string{http.MethodPut, http.MethodPatch, http.MethodDelete} {
				e.do(m, "/v2/repo/manifests/x", strings.NewReader("{}"), tc.opts...).
					wantError(t, http.StatusUnauthorized, CodeUnauthorized)
			}
		})
	}
	if e.hasBlob("repo", d) {
		t.Fatal("an unauthenticated push stored a blob")
	}

	// Reads are anonymous, and the right credentials push.
	e.do(http.MethodGet, "/v2/_catalog", nil).wantStatus(t, http.StatusOK)
	e.do(http.MethodPost, push, bytes.NewReader(blob), withAuth()).wantStatus(t, http.StatusCreated)
	e.do(http.MethodGet, "/v2/repo/blobs/"+d.String(), nil).wantStatus(t, http.StatusOK)
}

// bearer is the challenge of a server at base (scheme and host), with
// the extra parameters of params, in pairs: "scope", "repository:repo:pull".
func bearer(base string, params ...string) string {
	s := `Bearer realm="` + base + `/token",service="catalogd"`
	for i := 0; i+1 < len(params); i += 2 {
		s += "," + params[i] + `="` + params[i+1] + `"`
	}
	return s
}

// TestPingChallenge checks the ping of a server whose writes need
// credentials: without any (or with the empty Basic pair) it is 401 with
// the Bearer challenge of catalogd's token endpoint; with a token of ours,
// even an anonymous one, or with the right Basic credentials it is 200;
// with a token not of ours or wrong credentials 401 again. Every other
// read answers anonymous clients and ignores credentials, without bcrypt;
// /healthz answers anyone.
func TestPingChallenge(t *testing.T) {
	e := newLimitEnv(t)
	const a = "192.0.2.1:40000"
	ping := bearer("http://example.com")
	empty := withHeader("Authorization", "Basic Og==") // base64(":")
	for _, tc := range []struct {
		name      string
		opts      []reqOpt
		challenge string
	}{
		{"no credentials", nil, ping},
		{"an empty user and password", []reqOpt{empty}, ping},
		{"a token not of ours", []reqOpt{withHeader("Authorization", "Bearer abc")}, bearer("http://example.com", "error", "invalid_token")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, m := range []string{http.MethodGet, http.MethodHead} {
				e.from(a, m, "/v2/", tc.opts...).
					wantHeader(t, "WWW-Authenticate", tc.challenge).
					wantError(t, http.StatusUnauthorized, CodeUnauthorized)
			}
		})
	}
	if n := e.hashes.calls.Load(); n != 0 || e.s.limiter.size() != 0 {
		t.Fatalf("pings without credentials ran %d bcrypt comparisons and left %d clients in the limiter", n, e.s.limiter.size())
	}

	e.from(a, http.MethodGet, "/v2/", withBasic(testUser, "wrong")).
		wantHeader(t, "WWW-Authenticate", ping).
		wantError(t, http.StatusUnauthorized, CodeUnauthorized)
	if n := e.hashes.calls.Load(); n != 1 {
		t.Fatalf("%d bcrypt comparisons for a ping with a wrong password, want 1", n)
	}
	for _, opt := range []reqOpt{withAuth(), withBearer(e.fetchToken(t, a)), withBearer(e.fetchToken(t, a, withAuth()))} {
		ok := e.from(a, http.MethodGet, "/v2/", opt).wantStatus(t, http.StatusOK)
		if string(ok.body) != "{}" {
			t.Fatalf("ping body %q", ok.body)
		}
		if _, found := ok.Header["Www-Authenticate"]; found {
			t.Fatal("a ping with credentials got a challenge")
		}
	}

	// A client without credentials reads on after the challenge, and
	// credentials on reads are not checked.
	calls := e.hashes.calls.Load()
	for _, opts := range [][]reqOpt{nil, {empty}, {withBasic(testUser, "wrong")}, {withBasic("nobody", "x")}, {withBearer("forged")}} {
		for _, path := range []string{"/v2/_catalog", "/v2/_find", "/v2/repo/tags/list", "/healthz"} {
			r := e.from(a, http.MethodGet, path, opts...)
			if r.StatusCode == http.StatusUnauthorized || r.StatusCode >= 500 {
				t.Fatalf("GET %s: %d %s", path, r.StatusCode, r.body)
			}
		}
	}
	e.from(a, http.MethodGet, "/healthz").wantStatus(t, http.StatusOK)
	if n := e.hashes.calls.Load(); n != calls {
		t.Fatalf("reads ran %d bcrypt comparisons", n-calls)
	}

	// The empty pair is no credentials on a write either: a challenge,
	// not a failure of the client.
	for range DefaultAuthFailures + 1 {
		e.from(a, http.MethodPost, uploadPath, empty).
			wantHeader(t, "WWW-Authenticate", bearer("http://example.com", "scope", "repository:repo:pull,push")).
			wantError(t, http.StatusUnauthorized, CodeUnauthorized)
	}
	e.from(a, http.MethodPost, uploadPath, withAuth()).wantStatus(t, http.StatusAccepted)

	// A locked-out client's ping with Basic credentials is refused like
	// its writes; its anonymous reads are untouched.
	e.lockOut(t, a)
	e.from(a, http.MethodGet, "/v2/", withAuth()).wantError(t, http.StatusTooManyRequests, CodeTooManyRequests)
	e.from(a, http.MethodGet, "/v2/").wantError(t, http.StatusUnauthorized, CodeUnauthorized)
	e.from(a, http.MethodGet, "/v2/_catalog").wantStatus(t, http.StatusOK)
}

// TestPingWithoutLogin checks that the ping answers 200 without a
// challenge when nobody needs to log in: in read-only and insecure dev
// mode.
func TestPingWithoutLogin(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  Opt
	}{
		{"read-only", WithReadOnly(true)},
		{"insecure dev", WithInsecureDev(true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, tc.opt)
			for _, m := range []string{http.MethodGet, http.MethodHead} {
				r := e.do(m, "/v2/", nil).wantStatus(t, http.StatusOK)
				if _, ok := r.Header["Www-Authenticate"]; ok {
					t.Fatalf("%s /v2/ in %s mode sent a challenge", m, tc.name)
				}
			}
			e.do(http.MethodGet, "/healthz", nil).wantStatus(t, http.StatusOK)
		})
	}
}

func TestReadOnly(t *testing.T) {
	e := newTestEnv(t, WithReadOnly(true))
	blob := []byte("never stored")
	d := digest.FromBytes(blob)
	for _, tc := range []struct {
		name string
		opts []reqOpt
	}{
		{"with valid credentials", []reqOpt{withAuth()}},
		{"without credentials", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := e.do(http.MethodPost, "/v2/repo/blobs/uploads/?digest="+d.String(), bytes.NewReader(blob), tc.opts...).
				wantError(t, http.StatusForbidden, CodeDenied).Message
			if !strings.Contains(msg, "read-only mode") {
				t.Fatalf("message %q does not say read-only mode", msg)
			}
			e.do(http.MethodDelete, "/v2/repo/manifests/latest", nil, tc.opts...).wantError(t, http.StatusForbidden, CodeDenied)
		})
	}
	e.do(http.MethodGet, "/v2/", nil).wantStatus(t, http.StatusOK)
	if e.hasBlob("repo", d) {
		t.Fatal("a read-only server stored a blob")
	}
}

func TestInsecureDev(t *testing.T) {
	e := newTestEnv(t, WithInsecureDev(true))
	blob := []byte("anyone may push in dev mode")
	d := digest.FromBytes(blob)
	e.do(http.MethodPost, "/v2/repo/blobs/uploads/?digest="+d.String(), bytes.NewReader(blob)).wantStatus(t, http.StatusCreated)
}

func TestNewNeedsCredentials(t *testing.T) {
	e := newTestEnv(t)
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	if _, err := New(e.reg, WithLogger(logger)); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("New without credentials: %v, want invalid argument", err)
	}
	if _, err := New(nil, WithInsecureDev(true)); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("New without a registry: %v", err)
	}
	for _, opt := range []Opt{WithInsecureDev(true), WithReadOnly(true), WithHtpasswd(testHtpasswd(t))} {
		if _, err := New(e.reg, WithLogger(logger), opt); err != nil {
			t.Fatal(err)
		}
	}
}

// hashCounter counts the bcrypt comparisons of an Htpasswd, and the most
// that ran at once.
type hashCounter struct {
	calls, running, peak atomic.Int64
}

// countHashes counts h's comparisons; hold, when not nil, runs inside
// each one, before bcrypt.
func countHashes(h *Htpasswd, hold func()) *hashCounter {
	c := &hashCounter{}
	compare := h.compareHash
	h.compareHash = func(hash, password []byte) error {
		c.calls.Add(1)
		n := c.running.Add(1)
		defer c.running.Add(-1)
		for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
		}
		if hold != nil {
			hold()
		}
		return compare(hash, password)
	}
	return c
}

// limitEnv is a server driven in-process, so that each request can come
// from any client address, with a fake clock for the limiter and a count
// of the bcrypt comparisons.
type limitEnv struct {
	*testEnv
	s      *Server
	h      *Htpasswd
	clock  *fakeClock
	hashes *hashCounter
}

func newLimitEnv(t *testing.T, opts ...Opt) *limitEnv {
	t.Helper()
	e := newTestEnv(t)
	h := testHtpasswd(t)
	hashes := countHashes(h, nil)
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	s, err := New(e.reg, append([]Opt{WithLogger(logger), WithHtpasswd(h)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	s.limiter.now = clock.now
	return &limitEnv{testEnv: e, s: s, h: h, clock: clock, hashes: hashes}
}

// from sends a request as if from the client at remote ("ip:port").
func (e *limitEnv) from(remote, method, path string, opts ...reqOpt) response {
	e.t.Helper()
	return e.fromCtx(context.Background(), remote, method, path, opts...)
}

func (e *limitEnv) fromCtx(ctx context.Context, remote, method, path string, opts ...reqOpt) response {
	e.t.Helper()
	req := httptest.NewRequestWithContext(ctx, method, path, nil)
	req.RemoteAddr = remote
	for _, o := range opts {
		o(req)
	}
	rec := httptest.NewRecorder()
	e.s.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = req
	b, _ := io.ReadAll(resp.Body)
	return response{Response: resp, body: b}
}

const uploadPath = "/v2/repo/blobs/uploads/"

// guess sends a wrong password from remote and checks the answer: 401
// while the client may still try, 429 once it is locked out.
func (e *limitEnv) guess(t *testing.T, remote string, status int) response {
	t.Helper()
	r := e.from(remote, http.MethodPost, uploadPath, withBasic(testUser, "wrong"))
	switch status {
	case http.StatusUnauthorized:
		r.wantError(t, status, CodeUnauthorized)
		r.wantHeader(t, "WWW-Authenticate", bearer("http://example.com", "scope", "repository:repo:pull,push"))
	case http.StatusTooManyRequests:
		r.wantError(t, status, CodeTooManyRequests)
	default:
		r.wantStatus(t, status)
	}
	return r
}

// lockOut makes remote fail DefaultAuthFailures times.
func (e *limitEnv) lockOut(t *testing.T, remote string) {
	t.Helper()
	for range DefaultAuthFailures {
		e.guess(t, remote, http.StatusUnauthorized)
	}
}

func TestAuthFailureLimit(t *testing.T) {
	const a, b = "192.0.2.1:40000", "192.0.2.2:40000"
	for _, tc := range []struct {
		name string
		opts []Opt
		run  func(t *testing.T, e *limitEnv)
	}{
		{"refused after the limit with 429 and Retry-After, without bcrypt", nil, func(t *testing.T, e *limitEnv) {
			e.lockOut(t, a)
			if n := e.hashes.calls.Load(); n != DefaultAuthFailures {
				t.Fatalf("%d bcrypt comparisons for %d guesses", n, DefaultAuthFailures)
			}
			const refusals = 500
			start := time.Now()
			for i := range refusals {
				r := e.guess(t, a, http.StatusTooManyRequests)
				if i == 0 {
					r.wantHeader(t, "Retry-After", "60")
					if _, ok := r.Header["Www-Authenticate"]; ok {
						t.Fatal("a 429 with a Basic challenge")
					}
				}
			}
			took := time.Since(start)
			// The right password and a cached one are refused too.
			e.from(a, http.MethodPost, uploadPath, withAuth()).wantError(t, http.StatusTooManyRequests, CodeTooManyRequests)
			e.from(a, http.MethodDelete, "/v2/repo/manifests/latest", withAuth()).wantError(t, http.StatusTooManyRequests, CodeTooManyRequests)
			if n := e.hashes.calls.Load(); n != DefaultAuthFailures {
				t.Fatalf("%d bcrypt comparisons after %d refusals, want still %d", n, refusals, DefaultAuthFailures)
			}
			t.Logf("%d refusals in %v (%.0f/s), no bcrypt", refusals, took.Round(time.Millisecond), refusals/took.Seconds())
			// Requests without credentials still get the challenge, reads
			// are untouched.
			e.from(a, http.MethodPost, uploadPath).wantError(t, http.StatusUnauthorized, CodeUnauthorized)
			e.from(a, http.MethodGet, "/v2/").wantError(t, http.StatusUnauthorized, CodeUnauthorized)
			e.from(a, http.MethodGet, "/v2/_catalog").wantStatus(t, http.StatusOK)
		}},
		{"the right password works after the lock-out, and resets", nil, func(t *testing.T, e *limitEnv) {
			e.lockOut(t, a)
			e.clock.advance(59 * time.Second)
			e.guess(t, a, http.StatusTooManyRequests).wantHeader(t, "Retry-After", "1")
			e.clock.advance(time.Second)
			e.from(a, http.MethodPost, uploadPath, withAuth()).wantStatus(t, http.StatusAccepted)
			// Reset: a full window of failures is allowed again.
			for range DefaultAuthFailures {
				e.guess(t, a, http.StatusUnauthorized)
			}
			// Without the reset this would be a second lock-out of 2 minutes.
			e.guess(t, a, http.StatusTooManyRequests).wantHeader(t, "Retry-After", "60")
		}},
		{"a success resets the count", nil, func(t *testing.T, e *limitEnv) {
			for range DefaultAuthFailures - 1 {
				e.guess(t, a, http.StatusUnauthorized)
			}
			e.from(a, http.MethodPost, uploadPath, withAuth()).wantStatus(t, http.StatusAccepted)
			for range DefaultAuthFailures - 1 {
				e.guess(t, a, http.StatusUnauthorized)
			}
			// A cached success resets too.
			e.from(a, http.MethodPost, uploadPath, withAuth()).wantStatus(t, http.StatusAccepted)
			e.lockOut(t, a)
			e.guess(t, a, http.StatusTooManyRequests)
		}},
		{"addresses are isolated", nil, func(t *testing.T, e *limitEnv) {
			e.lockOut(t, a)
			calls := e.hashes.calls.Load()
			e.guess(t, b, http.StatusUnauthorized)
			if e.hashes.calls.Load() != calls+1 {
				t.Fatal("another address's guess was not verified")
			}
			e.from(b, http.MethodPost, uploadPath, withAuth()).wantStatus(t, http.StatusAccepted)
			e.guess(t, a, http.StatusTooManyRequests)
			e.from("192.0.2.1:40001", http.MethodPost, uploadPath, withAuth()).
				wantError(t, http.StatusTooManyRequests, CodeTooManyRequests) // another port, same address
		}},
		{"X-Forwarded-For is not trusted", nil, func(t *testing.T, e *limitEnv) {
			e.lockOut(t, a)
			e.from(a, http.MethodPost, uploadPath, withAuth(), withHeader("X-Forwarded-For", "192.0.2.2"),
				withHeader("X-Real-Ip", "192.0.2.2")).wantError(t, http.StatusTooManyRequests, CodeTooManyRequests)
			e.from(b, http.MethodPost, uploadPath, withAuth(), withHeader("X-Forwarded-For", "192.0.2.1")).
				wantStatus(t, http.StatusAccepted)
		}},
		{"an IPv6 client is its /64", nil, func(t *testing.T, e *limitEnv) {
			e.lockOut(t, "[2001:db8::1]:40000")
			e.guess(t, "[2001:db8::ffff:2]:40000", http.StatusTooManyRequests)
			e.guess(t, "[2001:db8:0:1::1]:40000", http.StatusUnauthorized)
		}},
		{"an IPv4-mapped IPv6 address is the IPv4 client", nil, func(t *testing.T, e *limitEnv) {
			e.lockOut(t, a)
			e.guess(t, "[::ffff:192.0.2.1]:40000", http.StatusTooManyRequests)
		}},
		{"parallel guesses cannot overshoot the limit", nil, func(t *testing.T, e *limitEnv) {
			release := make(chan struct{})
			e.hashes = countHashes(e.h, func() { <-release })
			e.h.slots = make(chan struct{}, 64)
			var wg sync.WaitGroup
			var statuses sync.Map
			for i := range 20 {
				wg.Go(func() {
					r := e.from(a, http.MethodPost, uploadPath, withBasic(testUser, fmt.Sprint("wrong", i)))
					statuses.Store(i, r.StatusCode)
				})
			}
			deadline := time.Now().Add(10 * time.Second)
			for e.hashes.running.Load() < DefaultAuthFailures && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond) // a sixth comparison would have started by now
			close(release)
			wg.Wait()
			if n := e.hashes.calls.Load(); n != DefaultAuthFailures {
				t.Fatalf("%d bcrypt comparisons for 20 parallel guesses, want %d", n, DefaultAuthFailures)
			}
			count := map[int]int{}
			statuses.Range(func(_, v any) bool { count[v.(int)]++; return true })
			if count[http.StatusUnauthorized] != DefaultAuthFailures || count[http.StatusTooManyRequests] != 20-DefaultAuthFailures {
				t.Fatalf("statuses %v", count)
			}
			e.guess(t, a, http.StatusTooManyRequests).wantHeader(t, "Retry-After", "60")
		}},
		{"parallel requests with the same credentials share one verification", nil, func(t *testing.T, e *limitEnv) {
			release := make(chan struct{})
			e.hashes = countHashes(e.h, func() { <-release })
			var wg sync.WaitGroup
			var statuses sync.Map
			for i := range 3 * DefaultAuthFailures {
				wg.Go(func() {
					statuses.Store(i, e.from(a, http.MethodPost, uploadPath, withAuth()).StatusCode)
				})
			}
			deadline := time.Now().Add(10 * time.Second)
			for e.hashes.running.Load() < 1 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond) // the others have joined it
			close(release)
			wg.Wait()
			if n := e.hashes.calls.Load(); n != 1 {
				t.Fatalf("%d bcrypt comparisons for %d parallel requests with the right password, want 1", n, 3*DefaultAuthFailures)
			}
			statuses.Range(func(k, v any) bool {
				if v.(int) != http.StatusAccepted {
					t.Errorf("request %v: %v, want 202", k, v)
				}
				return true
			})
		}},
		{"the limit and the window are options", []Opt{WithAuthFailureLimit(2, 3*time.Second)}, func(t *testing.T, e *limitEnv) {
			e.guess(t, a, http.StatusUnauthorized)
			e.guess(t, a, http.StatusUnauthorized)
			e.guess(t, a, http.StatusTooManyRequests).wantHeader(t, "Retry-After", "3")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newLimitEnv(t, tc.opts...)) })
	}
}

// TestAuthFailureLog: a flood of guesses logs the first failure and the
// lock-out of each client, not every guess.
func TestAuthFailureLog(t *testing.T) {
	e := newTestEnv(t)
	logger, hook := logtest.NewNullLogger()
	s, err := New(e.reg, WithLogger(logger), WithHtpasswd(testHtpasswd(t)))
	if err != nil {
		t.Fatal(err)
	}
	for range 200 {
		req := httptest.NewRequest(http.MethodPost, uploadPath, nil)
		req.RemoteAddr = "192.0.2.9:1"
		req.SetBasicAuth(testUser, "wrong")
		s.ServeHTTP(httptest.NewRecorder(), req)
	}
	var warnings []*logrus.Entry
	for _, en := range hook.AllEntries() {
		if en.Level == logrus.WarnLevel {
			warnings = append(warnings, en)
		}
	}
	if len(warnings) != 2 || warnings[0].Data["client"] != "192.0.2.9" || warnings[1].Data["lockout"] != "1m0s" {
		for _, w := range warnings {
			t.Log(w.Message, w.Data)
		}
		t.Fatalf("%d warnings for 200 guesses, want 2: the first failure and the lock-out", len(warnings))
	}
	if warnings[0].Data["user"] != testUser || warnings[0].Data["request_id"] == nil {
		t.Fatalf("first failure logged with %v", warnings[0].Data)
	}
}

// TestVerificationSlots: bcrypt comparisons run in a bounded number of
// slots, a request waiting for one gives up when its context ends, and
// reads never wait for one.
func TestVerificationSlots(t *testing.T) {
	t.Run("half of GOMAXPROCS, at least one", func(t *testing.T) {
		if got, want := cap(testHtpasswd(t).slots), max(1, runtime.GOMAXPROCS(0)/2); got != want {
			t.Fatalf("%d slots, want %d", got, want)
		}
	})
	t.Run("the bound holds", func(t *testing.T) {
		h := testHtpasswd(t)
		h.slots = make(chan struct{}, 2)
		c := countHashes(h, func() { time.Sleep(5 * time.Millisecond) })
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				if err := h.Authenticate(context.Background(), testUser, "wrong"); !errdefs.IsUnauthenticated(err) {
					t.Errorf("wrong password: %v", err)
				}
			})
		}
		wg.Wait()
		if p := c.peak.Load(); p < 1 || p > 2 {
			t.Fatalf("%d comparisons at once, bound 2", p)
		}
	})
	t.Run("a waiting request respects its context, and reads never wait", func(t *testing.T) {
		e := newLimitEnv(t)
		e.h.slots = make(chan struct{}, 1)
		release := make(chan struct{})
		e.hashes = countHashes(e.h, func() { <-release })
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.h.Authenticate(context.Background(), testUser, "wrong")
		}()
		deadline := time.Now().Add(10 * time.Second)
		for e.hashes.running.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		start := time.Now()
		err := e.h.Authenticate(ctx, testUser, testPassword)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Fatalf("Authenticate with every slot busy: %v after %v, want the deadline", err, time.Since(start))
		}

		ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
		e.fromCtx(ctx, "192.0.2.1:1", http.MethodPost, uploadPath, withAuth()).wantError(t, http.StatusServiceUnavailable, CodeUnavailable)
		cancel()
		if e.s.limiter.size() != 0 {
			t.Fatal("a verification that never ran was counted as a failure")
		}

		for _, path := range []string{"/v2/", "/v2/_catalog", "/v2/_find", "/v2/repo/tags/list"} {
			start := time.Now()
			r := e.from("192.0.2.1:1", http.MethodGet, path)
			if r.StatusCode >= 500 || time.Since(start) > 5*time.Second {
				t.Fatalf("GET %s with every slot busy: %d after %v", path, r.StatusCode, time.Since(start))
			}
		}
		if n := e.hashes.calls.Load(); n != 1 {
			t.Fatalf("%d comparisons, want the one holding the slot", n)
		}
		close(release)
		<-done
	})
}

// TestReadsDuringGuessFlood measures anonymous reads (a manifest, a blob,
// the find extension) idle and while 8 clients guess passwords as fast as
// they can, with real bcrypt and the limiter out of the way (as from a
// spray of addresses). The slots keep the median read latency within a
// small multiple of the idle one. Medians of samples spread over about a
// second, generous slack and bounded loops keep it robust on a small, busy
// machine.
func TestReadsDuringGuessFlood(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), 6)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHtpasswd(strings.NewReader(testUser + ":" + string(hash) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	hashes := countHashes(h, nil)
	e := newTestEnv(t, WithHtpasswd(h), WithAuthFailureLimit(1<<30, time.Hour))
	img := newImage(t, "layer read during the flood", nil, nil)
	e.push("repo", "v1", img)
	reads := []string{
		"/v2/repo/manifests/v1",
		"/v2/repo/blobs/" + digest.FromBytes(img.layers[0]).String(),
		"/v2/_find?name=*",
	}
	client := e.srv.Client()

	const samples = 30
	median := func() time.Duration {
		d := make([]time.Duration, 0, samples)
		for i := range samples {
			start := time.Now()
			resp, err := client.Get(e.srv.URL + reads[i%len(reads)])
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d", reads[i%len(reads)], resp.StatusCode)
			}
			d = append(d, time.Since(start))
			time.Sleep(20 * time.Millisecond) // spread over several bcrypt runs
		}
		slices.Sort(d)
		return d[len(d)/2]
	}
	flood := func(slots int) (time.Duration, float64) {
		h.slots = make(chan struct{}, slots)
		hashes.peak.Store(0)
		stop := make(chan struct{})
		floodClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: time.Minute}
		defer floodClient.CloseIdleConnections()
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				deadline := time.Now().Add(2 * time.Minute)
				for i := 0; i < 5000 && time.Now().Before(deadline); i++ {
					select {
					case <-stop:
						return
					default:
					}
					req, _ := http.NewRequest(http.MethodPost, e.srv.URL+uploadPath, nil)
					req.SetBasicAuth(testUser, fmt.Sprintf("guess %d", i))
					resp, err := floodClient.Do(req)
					if err != nil {
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		defer func() { close(stop); wg.Wait() }()
		deadline := time.Now().Add(30 * time.Second)
		for hashes.running.Load() < int64(min(slots, 8)) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		before, start := hashes.calls.Load(), time.Now()
		m := median()
		rate := float64(hashes.calls.Load()-before) / time.Since(start).Seconds()
		if p := hashes.peak.Load(); p > int64(slots) {
			t.Fatalf("%d comparisons at once, bound %d", p, slots)
		}
		return m, rate
	}

	median() // warm up
	idle := median()
	slots := cap(h.slots)
	underFlood, rate := flood(slots)
	t.Logf("median read: idle %v, under the flood %v (%d slots, %.0f guesses verified/s)",
		idle.Round(10*time.Microsecond), underFlood.Round(10*time.Microsecond), slots, rate)
	unbounded, urate := flood(64)
	t.Logf("for comparison, with 64 slots: median read %v (%.0f guesses verified/s)", unbounded.Round(10*time.Microsecond), urate)
	if limit := 5*idle + 25*time.Millisecond; underFlood > limit {
		t.Fatalf("median read under the flood %v, idle %v: over %v", underFlood, idle, limit)
	}
}
