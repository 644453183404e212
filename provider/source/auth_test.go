package source

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
)

// tokenService is the service name of tokenRegistry's challenges: quoted,
// with a comma, as a parser that splits on commas would break it.
const tokenService = "registry.test, eu"

// tokenRegistry demands Bearer tokens of the scope of each request, issued
// by the token endpoint /token that it serves too, like a registry behind a
// token service. The token endpoint checks the service and scope, and the
// Basic credentials when user is set; it counts its requests by scope.
type tokenRegistry struct {
	next       http.Handler
	user, pass string
	// accessToken answers with access_token rather than token.
	accessToken bool
	// lifetime is the expires_in of the answers; 0 leaves it out.
	lifetime int
	realm    string

	// holdTokens, when set, makes the token endpoint wait until it is
	// closed (at most a while), which happens once holdUntil challenges
	// were sent.
	holdTokens chan struct{}
	holdUntil  int

	mu         sync.Mutex
	issued     map[string]string // token -> scope
	requests   map[string]int    // scope -> token requests
	refused    int               // token requests refused
	challenges int               // 401 answers
}

func newTokenRegistry(t *testing.T, next http.Handler, user, pass string) (*tokenRegistry, string) {
	t.Helper()
	tr := &tokenRegistry{next: next, user: user, pass: pass, lifetime: 300,
		issued: map[string]string{}, requests: map[string]int{}}
	srv := serve(t, tr)
	tr.realm = srv.URL + "/token"
	return tr, srv.URL
}

// scopeOf is the scope a request needs.
func scopeOf(path string) string {
	rest := strings.TrimPrefix(path, "/v2/")
	for _, sep := range []string{"/manifests/", "/blobs/", "/tags/"} {
		if i := strings.LastIndex(rest, sep); i > 0 {
			return "repository:" + rest[:i] + ":pull"
		}
	}
	return "registry:catalog:*"
}

func (tr *tokenRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		tr.serveToken(w, r)
		return
	}
	scope := scopeOf(r.URL.Path)
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		tr.mu.Lock()
		granted := tr.issued[tok]
		tr.mu.Unlock()
		if granted == scope {
			tr.next.ServeHTTP(w, r)
			return
		}
	}
	tr.mu.Lock()
	tr.challenges++
	if tr.holdTokens != nil && tr.challenges == tr.holdUntil {
		close(tr.holdTokens)
	}
	tr.mu.Unlock()
	w.Header().Add("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s",service="%s",scope="%s", Basic realm="unused"`,
		tr.realm, tokenService, scope))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
}

func (tr *tokenRegistry) serveToken(w http.ResponseWriter, r *http.Request) {
	if tr.holdTokens != nil {
		select {
		case <-tr.holdTokens:
		case <-time.After(10 * time.Second):
		}
	}
	q := r.URL.Query()
	scope := q.Get("scope")
	tr.mu.Lock()
	defer tr.mu.Unlock()
	repo, isRepo := strings.CutPrefix(scope, "repository:")
	repo, isPull := strings.CutSuffix(repo, ":pull")
	validScope := scope == "registry:catalog:*" || (isRepo && isPull && repo != "")
	if q.Get("service") != tokenService || len(q["scope"]) != 1 || !validScope {
		tr.refused++
		http.Error(w, "bad service or scope: "+r.URL.RawQuery, http.StatusBadRequest)
		return
	}
	if tr.user != "" {
		if u, p, ok := r.BasicAuth(); !ok || u != tr.user || p != tr.pass {
			tr.refused++
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`)
			return
		}
	}
	tr.requests[scope]++
	tok := fmt.Sprintf("tok-%d", len(tr.issued))
	tr.issued[tok] = scope
	ans := map[string]any{}
	if tr.accessToken {
		ans["access_token"] = tok
	} else {
		ans["token"] = tok
	}
	if tr.lifetime > 0 {
		ans["expires_in"] = tr.lifetime
	}
	_ = json.NewEncoder(w).Encode(ans)
}

func (tr *tokenRegistry) tokenRequests() map[string]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := map[string]int{}
	for k, v := range tr.requests {
		out[k] = v
	}
	return out
}

func TestTokenAuth(t *testing.T) {
	env := newCatalogEnv(t)
	nano := env.item(t, "nanoserver", "10.0.10586.0")
	for _, tc := range []struct {
		name        string
		user, pass  string
		accessToken bool
	}{
		{name: "anonymous"},
		{name: "with credentials", user: "reader", pass: "s3cret, with a comma"},
		{name: "access_token", accessToken: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, url := newTokenRegistry(t, env.handler, tc.user, tc.pass)
			tr.accessToken = tc.accessToken
			c := newTestClientOf(t, api.Source{Name: testSourceName, Location: url, Username: tc.user, Password: tc.pass})
			ctx := context.Background()

			entries, err := syncedEntries(ctx, t, c)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 20 {
				t.Fatalf("%d entries, want 20", len(entries))
			}
			for range 3 {
				desc, _, err := c.Manifest(ctx, "nanoserver", "10.0.10586.0")
				if err != nil {
					t.Fatal(err)
				}
				if desc.Digest != nano.Digest {
					t.Fatalf("digest %s, want %s", desc.Digest, nano.Digest)
				}
			}
			_, body, err := c.Manifest(ctx, "nanoserver", nano.Digest.String())
			if err != nil {
				t.Fatal(err)
			}
			var m struct{ Config struct{ Digest string } }
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			rc, err := c.Blob(ctx, "nanoserver", digestOf(t, m.Config.Digest), 0)
			if err != nil {
				t.Fatal(err)
			}
			rc.Close()

			want := map[string]int{"registry:catalog:*": 1, "repository:nanoserver:pull": 1}
			if got := tr.tokenRequests(); !reflect.DeepEqual(got, want) {
				t.Errorf("token requests %v, want %v", got, want)
			}
			// A token is sent at once to the scope it was issued for:
			// one challenge per scope.
			tr.mu.Lock()
			defer tr.mu.Unlock()
			if tr.challenges != 2 {
				t.Errorf("%d challenges, want 2", tr.challenges)
			}
		})
	}
}

func TestTokenAuthSharedByConcurrentRequests(t *testing.T) {
	env := newCatalogEnv(t)
	tr, url := newTokenRegistry(t, withoutFind(env.handler), "", "")
	c := newTestClient(t, url)
	entries, err := syncedEntries(context.Background(), t, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 20 {
		t.Fatalf("%d entries, want 20", len(entries))
	}
	got := tr.tokenRequests()
	// The catalog scope, and one scope per repository (18), each asked
	// once however many concurrent requests needed it.
	if len(got) != 19 {
		t.Errorf("token requests for %d scopes, want 19: %v", len(got), got)
	}
	for scope, n := range got {
		if n != 1 {
			t.Errorf("scope %s: %d token requests, want 1", scope, n)
		}
	}
}

func TestTokenFetchedOnceForConcurrentRequests(t *testing.T) {
	env := newCatalogEnv(t)
	const n = 8
	tr, url := newTokenRegistry(t, env.handler, "", "")
	// The token service answers once all n requests were challenged, so
	// that they all need the token while it is being fetched.
	tr.holdTokens, tr.holdUntil = make(chan struct{}), n
	c := newTestClient(t, url)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, _, errs[i] = c.Manifest(context.Background(), "nanoserver", "latest") })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := tr.tokenRequests(); got["repository:nanoserver:pull"] != 1 {
		t.Errorf("token requests %v, want one", got)
	}
}

func TestTokenExpiry(t *testing.T) {
	env := newCatalogEnv(t)
	for _, tc := range []struct {
		name     string
		lifetime int
		// after is how long after the first request the second is sent.
		after    time.Duration
		requests int
	}{
		{name: "reused within its lifetime", lifetime: 300, after: 200 * time.Second, requests: 1},
		{name: "renewed shortly before it expires", lifetime: 300, after: 295 * time.Second, requests: 2},
		{name: "default lifetime of 60 s", lifetime: 0, after: 30 * time.Second, requests: 1},
		{name: "default lifetime expired", lifetime: 0, after: 61 * time.Second, requests: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, url := newTokenRegistry(t, env.handler, "", "")
			tr.lifetime = tc.lifetime
			c := newTestClient(t, url)
			start := time.Now()
			c.auth.now = func() time.Time { return start }
			if _, _, err := c.Manifest(context.Background(), "nanoserver", "latest"); err != nil {
				t.Fatal(err)
			}
			c.auth.now = func() time.Time { return start.Add(tc.after) }
			if _, _, err := c.Manifest(context.Background(), "nanoserver", "latest"); err != nil {
				t.Fatal(err)
			}
			if n := tr.tokenRequests()["repository:nanoserver:pull"]; n != tc.requests {
				t.Errorf("%d token requests, want %d", n, tc.requests)
			}
		})
	}
}

func TestTokenRefusedToken(t *testing.T) {
	// A registry that stops honouring a token (revoked, clock skew) gets a
	// new one, once.
	env := newCatalogEnv(t)
	tr, url := newTokenRegistry(t, env.handler, "", "")
	c := newTestClient(t, url)
	ctx := context.Background()
	if _, _, err := c.Manifest(ctx, "nanoserver", "latest"); err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	clear(tr.issued)
	tr.mu.Unlock()
	if _, _, err := c.Manifest(ctx, "nanoserver", "latest"); err != nil {
		t.Fatal(err)
	}
	if n := tr.tokenRequests()["repository:nanoserver:pull"]; n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
}

func TestTokenAuthErrors(t *testing.T) {
	env := newCatalogEnv(t)
	for _, tc := range []struct {
		name       string
		user, pass string
		// the client's credentials
		cuser, cpass string
		want         []string
	}{
		{name: "wrong password", user: "reader", pass: "right", cuser: "reader", cpass: "wrong",
			want: []string{`user "reader"`, "refused", "token service"}},
		{name: "no credentials", user: "reader", pass: "right", want: []string{"anonymous access refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, url := newTokenRegistry(t, env.handler, tc.user, tc.pass)
			c := newTestClientOf(t, api.Source{Name: testSourceName, Location: url, Username: tc.cuser, Password: tc.cpass})
			_, _, err := c.Manifest(context.Background(), "nanoserver", "latest")
			if !errdefs.IsUnauthenticated(err) {
				t.Fatalf("error %v, want Unauthenticated", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// basicRegistry demands Basic credentials, and counts the 401s it sends.
type basicRegistry struct {
	next       http.Handler
	user, pass string
	mu         sync.Mutex
	challenges int
}

func (b *basicRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); ok && u == b.user && p == b.pass {
		b.next.ServeHTTP(w, r)
		return
	}
	b.mu.Lock()
	b.challenges++
	b.mu.Unlock()
	w.Header().Set("WWW-Authenticate", `Basic realm="basic registry, test"`)
	w.WriteHeader(http.StatusUnauthorized)
}

func TestBasicAuth(t *testing.T) {
	env := newCatalogEnv(t)
	for _, tc := range []struct {
		name       string
		user, pass string
		challenges int
		// want is "" for success, else what the error says.
		want string
	}{
		{name: "with credentials", user: "reader", pass: "s3cret", challenges: 1},
		{name: "without credentials", challenges: 1, want: "wants credentials"},
		{name: "wrong credentials", user: "reader", pass: "wrong", challenges: 2, want: "HTTP 401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := &basicRegistry{next: env.handler, user: "reader", pass: "s3cret"}
			c := newTestClientOf(t, api.Source{Name: testSourceName, Location: serve(t, br).URL, Username: tc.user, Password: tc.pass})
			ctx := context.Background()
			_, _, err := c.Manifest(ctx, "nanoserver", "latest")
			if tc.want != "" {
				if !errdefs.IsUnauthenticated(err) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want Unauthenticated saying %q", err, tc.want)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				// Later requests send the credentials at once.
				if _, _, err := c.Manifest(ctx, "windowsservercore", "latest"); err != nil {
					t.Fatal(err)
				}
				if _, err := syncedEntries(ctx, t, c); err != nil {
					t.Fatal(err)
				}
			}
			br.mu.Lock()
			defer br.mu.Unlock()
			if br.challenges != tc.challenges {
				t.Errorf("%d challenges, want %d", br.challenges, tc.challenges)
			}
		})
	}
}

func TestParseChallenges(t *testing.T) {
	type ch = map[string]map[string]string // scheme -> params
	for _, tc := range []struct {
		name   string
		values []string
		want   []string // scheme per challenge, in order
		params ch
	}{
		{
			name:   "docker hub",
			values: []string{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"`},
			want:   []string{"bearer"},
			params: ch{"bearer": {"realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:library/ubuntu:pull"}},
		},
		{
			name:   "commas and escapes in quoted values, spaces, case",
			values: []string{`BEARER Realm = "https://a/t?x=1,2" , Service="a, \"b\"",scope="repository:a:pull,push"`},
			want:   []string{"bearer"},
			params: ch{"bearer": {"realm": "https://a/t?x=1,2", "service": `a, "b"`, "scope": "repository:a:pull,push"}},
		},
		{
			name:   "several challenges in one header",
			values: []string{`Basic realm="x, y", Bearer realm="https://a/t",service=reg`},
			want:   []string{"basic", "bearer"},
			params: ch{"basic": {"realm": "x, y"}, "bearer": {"realm": "https://a/t", "service": "reg"}},
		},
		{
			name:   "several headers, a token68 and a bare scheme",
			values: []string{`Negotiate abc123==`, `Basic`, `Bearer realm="r"`},
			want:   []string{"negotiate", "basic", "bearer"},
			params: ch{"negotiate": {}, "basic": {}, "bearer": {"realm": "r"}},
		},
		{
			name:   "unterminated quote",
			values: []string{`Bearer realm="https://a/t`},
			want:   []string{"bearer"},
			params: ch{"bearer": {"realm": "https://a/t"}},
		},
		{name: "empty", values: []string{"", " , "}},
		{name: "junk", values: []string{`=== "" ,;`}, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseChallenges(tc.values)
			var schemes []string
			for _, c := range got {
				schemes = append(schemes, c.scheme)
				if want, ok := tc.params[c.scheme]; ok && !reflect.DeepEqual(c.params, want) {
					t.Errorf("%s params %v, want %v", c.scheme, c.params, want)
				}
			}
			if !reflect.DeepEqual(schemes, tc.want) {
				t.Errorf("schemes %v, want %v", schemes, tc.want)
			}
		})
	}
}
