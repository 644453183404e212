package catalog

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

func withBearer(tok string) reqOpt { return withHeader("Authorization", "Bearer "+tok) }

// fetchToken gets a token from GET /token as the client at remote, with
// opts (withAuth for a user's token, nothing for an anonymous one).
func (e *limitEnv) fetchToken(t *testing.T, remote string, opts ...reqOpt) string {
	t.Helper()
	r := e.from(remote, http.MethodGet, "/token?service=catalogd&scope=repository:repo:pull,push", opts...).wantStatus(t, http.StatusOK)
	return decodeToken(t, r).Token
}

func decodeToken(t *testing.T, r response) tokenResponse {
	t.Helper()
	var tr tokenResponse
	if err := json.Unmarshal(r.body, &tr); err != nil || tr.Token == "" || tr.AccessToken != tr.Token {
		t.Fatalf("token response (%v): %s", err, r.body)
	}
	return tr
}

// TestTokenEndpoint checks GET and POST /token: an anonymous token
// without credentials, a user's with them, the OAuth2 password grant,
// and refusals of wrong credentials (401 with a Basic challenge, counted
// against the client's limit) and of bad forms.
func TestTokenEndpoint(t *testing.T) {
	e := newLimitEnv(t)
	e.s.tokens.now = e.clock.now
	const a = "192.0.2.1:40000"
	form := func(v url.Values) reqOpt {
		return func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(v.Encode()))
			r.ContentLength = int64(len(v.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}

	r := e.from(a, http.MethodGet, "/token?service=catalogd&scope=repository:repo:pull").
		wantStatus(t, http.StatusOK).wantHeader(t, "Content-Type", "application/json").wantHeader(t, "Cache-Control", "no-store")
	anon := decodeToken(t, r)
	if anon.ExpiresIn != int64(DefaultTokenTTL/time.Second) || anon.IssuedAt != e.clock.now().Format(time.RFC3339) {
		t.Fatalf("anonymous token: expires_in %d, issued_at %q", anon.ExpiresIn, anon.IssuedAt)
	}
	if c, err := e.s.tokens.verify(anon.Token); err != nil || c.Sub != "" {
		t.Fatalf("anonymous token: claims %+v, %v", c, err)
	}
	if c, err := e.s.tokens.verify(e.fetchToken(t, a, withHeader("Authorization", "Basic Og=="))); err != nil || c.Sub != "" {
		t.Fatalf("token for the empty pair: claims %+v, %v", c, err)
	}
	if n := e.hashes.calls.Load(); n != 0 {
		t.Fatalf("anonymous tokens ran %d bcrypt comparisons", n)
	}

	for _, tc := range []struct {
		name string
		get  func() string
	}{
		{"GET with Basic credentials", func() string { return e.fetchToken(t, a, withAuth()) }},
		{"POST password grant", func() string {
			r := e.from(a, http.MethodPost, "/token", form(url.Values{
				"grant_type": {"password"}, "username": {testUser}, "password": {testPassword},
				"service": {"catalogd"}, "scope": {"repository:repo:pull,push"}, "client_id": {"containerd-client"},
			})).wantStatus(t, http.StatusOK)
			return decodeToken(t, r).Token
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.get()
			if c, err := e.s.tokens.verify(tok); err != nil || c.Sub != testUser || c.FP == "" {
				t.Fatalf("claims %+v, %v", c, err)
			}
			e.from(a, http.MethodPost, uploadPath, withBearer(tok)).wantStatus(t, http.StatusAccepted)
		})
	}

	for _, tc := range []struct {
		name   string
		method string
		opts   []reqOpt
		status int
		code   string
	}{
		{"another grant", http.MethodPost, []reqOpt{form(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}})}, 400, CodeInvalidArgument},
		{"no username", http.MethodPost, []reqOpt{form(url.Values{"grant_type": {"password"}, "password": {"x"}})}, 400, CodeInvalidArgument},
		{"not a form", http.MethodPost, []reqOpt{withHeader("Content-Type", "application/json")}, 400, CodeInvalidArgument},
		{"a form over the limit", http.MethodPost, []reqOpt{form(url.Values{"grant_type": {"password"}, "pad": {strings.Repeat("x", maxTokenForm)}})}, 413, CodeSizeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.from(a, tc.method, "/token", tc.opts...).wantError(t, tc.status, tc.code)
		})
	}

	// Wrong credentials: 401 with a Basic challenge, counted like any
	// other failure; the lock-out covers the token endpoint too.
	calls := e.hashes.calls.Load()
	for i := range DefaultAuthFailures {
		opt := withBasic(testUser, "wrong")
		if i%2 == 1 {
			opt = form(url.Values{"grant_type": {"password"}, "username": {testUser}, "password": {"wrong"}})
		}
		method := http.MethodGet
		if i%2 == 1 {
			method = http.MethodPost
		}
		e.from(a, method, "/token", opt).
			wantHeader(t, "WWW-Authenticate", `Basic realm="catalogd"`).
			wantError(t, http.StatusUnauthorized, CodeUnauthorized)
	}
	if n := e.hashes.calls.Load() - calls; n != DefaultAuthFailures {
		t.Fatalf("%d bcrypt comparisons for %d wrong passwords", n, DefaultAuthFailures)
	}
	e.from(a, http.MethodGet, "/token", withAuth()).wantError(t, http.StatusTooManyRequests, CodeTooManyRequests)
	e.from(a, http.MethodPost, uploadPath, withAuth()).wantError(t, http.StatusTooManyRequests, CodeTooManyRequests)
	// An anonymous token is still there for a locked-out client's pulls.
	e.from(a, http.MethodGet, "/token").wantStatus(t, http.StatusOK)
}

// TestTokenOnWrites checks the tokens a write accepts: a user's, and no
// anonymous, forged, other server's or expired one, and that tokens cost
// no bcrypt.
func TestTokenOnWrites(t *testing.T) {
	e := newLimitEnv(t)
	e.s.tokens.now = e.clock.now
	const a = "192.0.2.1:40000"
	user := e.fetchToken(t, a, withAuth())
	anon := e.fetchToken(t, a)
	calls := e.hashes.calls.Load()
	for range 20 {
		e.from(a, http.MethodPost, uploadPath, withBearer(user)).wantStatus(t, http.StatusAccepted)
	}
	if n := e.hashes.calls.Load(); n != calls {
		t.Fatalf("writes with a token ran %d bcrypt comparisons", n-calls)
	}
	e.from(a, http.MethodDelete, "/v2/repo/manifests/latest", withBearer(user)).wantError(t, http.StatusNotFound, CodeNameUnknown)

	other, err := newTokenIssuer(DefaultTokenTTL)
	if err != nil {
		t.Fatal(err)
	}
	otherTok, _, err := other.issue(tokenClaims{Sub: testUser})
	if err != nil {
		t.Fatal(err)
	}
	payload, sig, _ := strings.Cut(user, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	forged := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(raw), testUser, "admin", 1))) + "." + sig

	invalid := bearer("http://example.com", "scope", "repository:repo:pull,push", "error", "invalid_token")
	for _, tc := range []struct {
		name, token, challenge string
	}{
		{"anonymous", anon, bearer("http://example.com", "scope", "repository:repo:pull,push", "error", "insufficient_scope")},
		{"another server's", otherTok, invalid},
		{"a changed payload", forged, invalid},
		{"no signature", payload, invalid},
		{"too long", strings.Repeat("a", maxTokenSize+1), invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.from(a, http.MethodPost, uploadPath, withBearer(tc.token)).
				wantHeader(t, "WWW-Authenticate", tc.challenge).
				wantError(t, http.StatusUnauthorized, CodeUnauthorized)
		})
	}
	e.from(a, http.MethodDelete, "/v2/repo/manifests/latest", withBearer(anon)).
		wantHeader(t, "WWW-Authenticate", bearer("http://example.com", "scope", "repository:repo:delete", "error", "insufficient_scope")).
		wantError(t, http.StatusUnauthorized, CodeUnauthorized)
	if e.s.limiter.size() != 0 {
		t.Fatal("refused tokens were counted as failed authentications")
	}

	e.clock.advance(DefaultTokenTTL - time.Second)
	e.from(a, http.MethodPost, uploadPath, withBearer(user)).wantStatus(t, http.StatusAccepted)
	e.clock.advance(time.Second)
	e.from(a, http.MethodPost, uploadPath, withBearer(user)).wantHeader(t, "WWW-Authenticate", invalid).
		wantError(t, http.StatusUnauthorized, CodeUnauthorized)
	e.from(a, http.MethodGet, "/v2/", withBearer(user)).wantHeader(t, "WWW-Authenticate", bearer("http://example.com", "error", "invalid_token")).
		wantError(t, http.StatusUnauthorized, CodeUnauthorized)
}

// TestTokenFollowsTheHtpasswdFile: a user's token ends when the user's
// password changes or the user is removed, and another user's stands.
func TestTokenFollowsTheHtpasswdFile(t *testing.T) {
	defer func(c int) { passwordCost = c }(passwordCost)
	passwordCost = bcrypt.MinCost
	path := filepath.Join(t.TempDir(), "htpasswd")
	for _, u := range []string{"alice", "bob"} {
		if err := SetPassword(path, u, u+" password"); err != nil {
			t.Fatal(err)
		}
	}
	h, err := LoadHtpasswd(path)
	if err != nil {
		t.Fatal(err)
	}
	env := newTestEnv(t)
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	s, err := New(env.reg, WithLogger(logger), WithHtpasswd(h))
	if err != nil {
		t.Fatal(err)
	}
	e := &limitEnv{testEnv: env, s: s, h: h}
	const a = "192.0.2.1:40000"
	alice := e.fetchToken(t, a, withBasic("alice", "alice password"))
	bob := e.fetchToken(t, a, withBasic("bob", "bob password"))
	e.from(a, http.MethodPost, uploadPath, withBearer(alice)).wantStatus(t, http.StatusAccepted)

	if err := SetPassword(path, "alice", "new password"); err != nil {
		t.Fatal(err)
	}
	e.from(a, http.MethodPost, uploadPath, withBearer(alice)).wantError(t, http.StatusUnauthorized, CodeUnauthorized)
	e.from(a, http.MethodPost, uploadPath, withBearer(bob)).wantStatus(t, http.StatusAccepted)
	alice = e.fetchToken(t, a, withBasic("alice", "new password"))
	e.from(a, http.MethodPost, uploadPath, withBearer(alice)).wantStatus(t, http.StatusAccepted)

	// A file rewritten without bob ends bob's token; alice's entry has a
	// new hash (a new salt), which ends hers too.
	line, err := HashPassword("alice", "new password")
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(path, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.from(a, http.MethodPost, uploadPath, withBearer(alice)).wantError(t, http.StatusUnauthorized, CodeUnauthorized)
	e.from(a, http.MethodPost, uploadPath, withBearer(bob)).wantError(t, http.StatusUnauthorized, CodeUnauthorized)
}

// TestTokenRealm checks the realm of the challenge: the request's scheme
// and Host, the accepting address when the Host cannot go into a header,
// and WithTokenRealm's URL, which New checks.
func TestTokenRealm(t *testing.T) {
	e := newTestEnv(t)
	e.do(http.MethodGet, "/v2/", nil).wantHeader(t, "WWW-Authenticate", bearer(e.srv.URL))
	s := e.srv.Config.Handler.(*Server)

	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}
	for _, tc := range []struct {
		name  string
		host  string
		tls   bool
		realm string
	}{
		{"the Host", "registry.example.com:5000", false, "http://registry.example.com:5000/token"},
		{"TLS", "registry.example.com", true, "https://registry.example.com/token"},
		{"an IPv6 Host", "[::1]:5000", false, "http://[::1]:5000/token"},
		{"a Host with a quote", `evil"host`, false, "http://127.0.0.1:5000/token"},
		{"no Host", "", false, "http://127.0.0.1:5000/token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.WithValue(context.Background(), http.LocalAddrContextKey, net.Addr(local))
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v2/", nil)
			req.Host = tc.host
			if tc.tls {
				req.TLS = &tls.ConnectionState{}
			}
			if got := s.tokenRealm(req); got != tc.realm {
				t.Fatalf("realm %q, want %q", got, tc.realm)
			}
		})
	}

	const realm = "https://registry.example.com/token"
	fixed := newTestEnv(t, WithTokenRealm(realm))
	if got := fixed.do(http.MethodGet, "/v2/", nil).Header.Get("WWW-Authenticate"); got != `Bearer realm="`+realm+`",service="catalogd"` {
		t.Fatalf("challenge %q", got)
	}
	for _, bad := range []string{"registry.example.com/token", "ftp://registry.example.com/token", "https:///token", `https://registry.example.com/"token`} {
		if _, err := New(e.reg, WithInsecureDev(true), WithTokenRealm(bad)); !errdefs.IsInvalidArgument(err) {
			t.Errorf("realm %q: %v, want invalid argument", bad, err)
		}
	}
}

// TestTokenIssuer checks the tokens themselves: they carry their claims
// and expire after the TTL.
func TestTokenIssuer(t *testing.T) {
	clock := newFakeClock()
	ti, err := newTokenIssuer(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ti.now = clock.now
	tok, issued, err := ti.issue(tokenClaims{Sub: "alice", FP: "0011"})
	if err != nil || !issued.Equal(clock.now()) {
		t.Fatal(issued, err)
	}
	c, err := ti.verify(tok)
	if err != nil || c.Sub != "alice" || c.FP != "0011" || c.Exp != clock.now().Add(time.Minute).Unix() {
		t.Fatalf("claims %+v, %v", c, err)
	}
	for _, bad := range []string{"", ".", tok + "x", "x" + tok, strings.Replace(tok, ".", "", 1)} {
		if _, err := ti.verify(bad); !errdefs.IsUnauthenticated(err) {
			t.Errorf("token %q: %v, want unauthenticated", bad, err)
		}
	}
	clock.advance(time.Minute)
	if _, err := ti.verify(tok); !errdefs.IsUnauthenticated(err) {
		t.Fatalf("expired token: %v", err)
	}
}
