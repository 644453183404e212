package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
)

// The replays of this file send, against real catalogd and providerd, the
// request sequences of the module (ContainerProviderApi.psm1) for
// PackageManagement's Register-PackageSource, Unregister-PackageSource and
// Install-Package with a cancel, on the paths of the module's route table
// and with the headers the module puts on every request over TCP.

// The module's headers: Accept (application/json, the event stream's
// application/x-ndjson) and the Content-Type of a JSON body (StringContent
// in UTF-8). The User-Agent is psModuleUserAgent's.
const (
	psAcceptJSON   = "application/json"
	psAcceptEvents = "application/x-ndjson"
	psContentJSON  = "application/json; charset=utf-8"
)

var psModuleVersion = regexp.MustCompile(`(?m)^\s*ModuleVersion\s*=\s*'([^']+)'`)

// psModuleUserAgent is the User-Agent the module sends: ContainerImage-PowerShell/
// and the ModuleVersion of ContainerImage.psd1, as ContainerProviderApi.psm1
// makes it; its Accept and Content-Type are checked there too.
func psModuleUserAgent(t *testing.T) string {
	t.Helper()
	m := psModuleVersion.FindSubmatch(psModuleFile(t, "ContainerImage.psd1"))
	if m == nil {
		t.Fatal("ContainerImage.psd1 has no ModuleVersion")
	}
	src := string(psModuleFile(t, psAPIFile))
	for _, want := range []string{
		"UserAgent.ParseAdd('ContainerImage-PowerShell/' + $script:ModuleVersion)",
		"[string]$Accept = '" + psAcceptJSON + "'",
		"-Accept '" + psAcceptEvents + "'",
		"StringContent -ArgumentList $json, ([System.Text.Encoding]::UTF8), 'application/json'",
		"AuthenticationHeaderValue -ArgumentList 'Bearer', $token",
	} {
		if !strings.Contains(src, want) {
			t.Fatalf("%s no longer holds %q: the replays' headers are not the module's", psAPIFile, want)
		}
	}
	return "ContainerImage-PowerShell/" + string(m[1])
}

// psRoutePath is the path of route name of the module's table, its
// variables filled from pairs (variable, value, ...); method must be the
// route's.
func psRoutePath(t *testing.T, method, name string, pairs ...string) string {
	t.Helper()
	for _, r := range readRouteTable(t) {
		if r.Name != name {
			continue
		}
		if r.Method != method {
			t.Fatalf("route %s is %s, not %s", name, r.Method, method)
		}
		path := r.Path
		for i := 0; i+1 < len(pairs); i += 2 {
			path = strings.ReplaceAll(path, "{"+pairs[i]+"}", url.PathEscape(pairs[i+1]))
		}
		if strings.Contains(path, "{") {
			t.Fatalf("route %s: %s has an unfilled variable", name, path)
		}
		return path
	}
	t.Fatalf("the module's route table has no route %s", name)
	return ""
}

// psTransport sends requests to one providerd over TCP as the module
// does: User-Agent, Accept and, for a JSON body, Content-Type on every
// request, and `Authorization: Bearer <token>`.
type psTransport struct {
	p         *providerd
	token     string
	userAgent string
	hc        *http.Client
}

func newPSTransport(t *testing.T, p *providerd) *psTransport {
	t.Helper()
	return &psTransport{p: p, token: p.Token(t), userAgent: psModuleUserAgent(t), hc: &http.Client{}}
}

// request builds a request with the module's headers; token "" leaves the
// Authorization header out.
func (c *psTransport) request(t *testing.T, ctx context.Context, method, path, accept, token string, body any) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.p.URL(path), rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", accept)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", psContentJSON)
	}
	return req
}

// sendAs sends one JSON request with token as the bearer token and returns
// the status, the headers and the body of the answer.
func (c *psTransport) sendAs(t *testing.T, token, method, path string, body any) (int, http.Header, []byte) {
	t.Helper()
	return c.sendAccept(t, token, method, path, psAcceptJSON, body)
}

// sendAccept is sendAs with the Accept header given, and the whole answer
// read (an event stream to its end).
func (c *psTransport) sendAccept(t *testing.T, token, method, path, accept string, body any) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := c.hc.Do(c.request(t, ctx, method, path, accept, token, body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	t.Logf("%s %s: %d", method, path, resp.StatusCode)
	return resp.StatusCode, resp.Header, b
}

// send is sendAs with providerd's token.
func (c *psTransport) send(t *testing.T, method, path string, body any) (int, http.Header, []byte) {
	t.Helper()
	return c.sendAs(t, c.token, method, path, body)
}

// wantEnvelope fails unless b is the v1 error envelope with code.
func wantEnvelope(t *testing.T, what string, status int, b []byte, wantStatus int, code string) api.Error {
	t.Helper()
	var env api.ErrorResponse
	if err := json.Unmarshal(b, &env); err != nil || status != wantStatus || env.Error.Code != code {
		t.Fatalf("%s: %d %s (%v), want %d with the envelope code %s", what, status, b, err, wantStatus, code)
	}
	return env.Error
}

// psEventStream is GET /v1/jobs/{id}/events as the module reads it: one
// api.JobEvent per line.
type psEventStream struct {
	resp   *http.Response
	lines  *bufio.Scanner
	cancel context.CancelFunc
}

// events opens the event stream of job id. The stream is cut after limit,
// so that no read waits longer; it is closed when the test ends.
func (c *psTransport) events(t *testing.T, id string, limit time.Duration) *psEventStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	resp, err := c.hc.Do(c.request(t, ctx, http.MethodGet, psRoutePath(t, http.MethodGet, "GetJobEvents", "id", id), psAcceptEvents, c.token, nil))
	if err != nil {
		cancel()
		t.Fatalf("the events of job %s: %v", id, err)
	}
	s := &psEventStream{resp: resp, cancel: cancel}
	t.Cleanup(s.close)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		t.Fatalf("the events of job %s: %d %s", id, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != psAcceptEvents {
		t.Fatalf("the events of job %s: Content-Type %q, want %s", id, ct, psAcceptEvents)
	}
	s.lines = bufio.NewScanner(resp.Body)
	s.lines.Buffer(make([]byte, 64<<10), 4<<20)
	return s
}

// next returns the next event; io.EOF when the stream ended.
func (s *psEventStream) next() (api.JobEvent, error) {
	if !s.lines.Scan() {
		if err := s.lines.Err(); err != nil {
			return api.JobEvent{}, err
		}
		return api.JobEvent{}, io.EOF
	}
	var ev api.JobEvent
	if err := json.Unmarshal(s.lines.Bytes(), &ev); err != nil {
		return api.JobEvent{}, fmt.Errorf("event line %q: %w", s.lines.Bytes(), err)
	}
	return ev, nil
}

func (s *psEventStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// maxEvents bounds the events a replay reads from one stream.
const maxEvents = 100000

// untilResult reads the stream to its result event and returns it, after
// checking that the stream ends there.
func (s *psEventStream) untilResult(t *testing.T, id string) api.JobEvent {
	t.Helper()
	for range maxEvents {
		ev, err := s.next()
		if err != nil {
			t.Fatalf("the events of job %s ended without a result event: %v", id, err)
		}
		if ev.JobID != id {
			t.Fatalf("the events of job %s carry an event of job %q: %+v", id, ev.JobID, ev)
		}
		if ev.Type != api.EventResult {
			continue
		}
		if ev.Job == nil || ev.Job.ID != id {
			t.Fatalf("the result event of job %s carries no job: %+v", id, ev)
		}
		if ev, err := s.next(); err != io.EOF {
			t.Fatalf("the events of job %s go on after the result event: %+v, %v", id, ev, err)
		}
		return ev
	}
	t.Fatalf("no result event within %d events of job %s", maxEvents, id)
	return api.JobEvent{}
}

// psInstallBody is the body that Install-Package sends to
// POST /v1/images/install.
type psInstallBody struct {
	Name            string `json:"name"`
	RequiredVersion string `json:"requiredVersion"`
	Source          string `json:"source"`
	Force           bool   `json:"force"`
	NoParents       bool   `json:"noParents"`
}

// install sends the install request and returns the job of its 202.
func (c *psTransport) install(t *testing.T, body psInstallBody) api.Job {
	t.Helper()
	code, h, b := c.send(t, http.MethodPost, psRoutePath(t, http.MethodPost, "InstallImage"), body)
	var job api.Job
	if err := json.Unmarshal(b, &job); code != http.StatusAccepted || err != nil || job.ID == "" {
		t.Fatalf("install %+v: %d %s (%v), want 202 with the job", body, code, b, err)
	}
	if loc := h.Get("Location"); loc != "/v1/jobs/"+job.ID {
		t.Errorf("install: Location %q, want /v1/jobs/%s", loc, job.ID)
	}
	return job
}

// installed lists the installed images of name (a check of providerd's
// state, not a request of the module's: p.images, filtered).
func (c *psTransport) installed(t *testing.T, name string) []api.Image {
	t.Helper()
	var out []api.Image
	for _, img := range c.p.images(t) {
		if strings.EqualFold(img.Name, name) {
			out = append(out, img)
		}
	}
	return out
}

// psRegisterBody is the body that Register-PackageSource -Credential
// sends to POST /v1/sources.
type psRegisterBody struct {
	Name     string `json:"name"`
	Location string `json:"location"`
	Insecure bool   `json:"insecure"`
	Trusted  bool   `json:"trusted"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// sources lists the sources, as GET /v1/sources answers them.
func (c *psTransport) sources(t *testing.T) []map[string]json.RawMessage {
	t.Helper()
	code, _, b := c.send(t, http.MethodGet, psRoutePath(t, http.MethodGet, "GetSources"), nil)
	if code != http.StatusOK {
		t.Fatalf("sources: %d %s", code, b)
	}
	return psObjects(t, b, "sources")
}

// sourceNamed returns the source name of a listing, nil if none.
func sourceNamed(t *testing.T, sources []map[string]json.RawMessage, name string) map[string]json.RawMessage {
	t.Helper()
	for _, s := range sources {
		if psField[string](t, s, "name") == name {
			return s
		}
	}
	return nil
}

// basicGate is a private registry in front of catalogd, as the
// distribution registry with htpasswd is: every /v2/ request without the
// right Basic credentials gets 401 and a Basic challenge. It forwards no
// Authorization header (catalogd's reads are anonymous), and records the
// ones it received.
type basicGate struct {
	URL            string
	user, password string

	mu      sync.Mutex
	passed  int             // requests forwarded
	refused int             // requests answered 401
	seen    map[string]bool // Authorization headers received
}

func newBasicGate(t *testing.T, target, user, password string) *basicGate {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &basicGate{user: user, password: password, seen: map[string]bool{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // providerd's requests canceled at its stop
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, password, ok := r.BasicAuth()
		ok = ok && user == g.user && password == g.password
		g.mu.Lock()
		if h := r.Header.Get("Authorization"); h != "" {
			g.seen[h] = true
		}
		if ok {
			g.passed++
		} else {
			g.refused++
		}
		g.mu.Unlock()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		r.Header.Del("Authorization")
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g.URL = srv.URL
	return g
}

func (g *basicGate) counts() (passed, refused int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.passed, g.refused
}

// received reports whether an Authorization header that contains s
// reached the gate.
func (g *basicGate) received(s string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for h := range g.seen {
		if strings.Contains(h, s) {
			return true
		}
	}
	return false
}

// TestPowerShellRegisterPackageSourceReplay replays
//
//	PS C:\> Register-PackageSource -ProviderName ContainerImage -Name private `
//	    -Location $location -Credential $cred -Trusted
//
// against a registry that needs Basic credentials: the source is added
// with the registry's credentials while providerd's token authorizes the
// request, neither answer returns the password, and a find and an install
// through the source reach the registry with the credentials. The old
// module's request, with the registry's password as the bearer token, is
// refused.
func TestPowerShellRegisterPackageSourceReplay(t *testing.T) {
	const user, password = "reguser", "Registry-s3cret"
	cat := startCatalogd(t, true)
	gate := newBasicGate(t, cat.URL(""), user, password)
	p := startProviderd(t, cat.URL(""), "")
	ps := newPSTransport(t, p)
	body := psRegisterBody{Name: "private", Location: gate.URL, Insecure: false, Trusted: true, Username: user, Password: password}

	// The old module sent -Credential's password as providerd's token.
	t.Run("registry password as the token", func(t *testing.T) {
		code, _, b := ps.sendAs(t, password, http.MethodPost, psRoutePath(t, http.MethodPost, "AddSource"), body)
		wantEnvelope(t, "POST /v1/sources with the registry's password as the bearer token", code, b, http.StatusUnauthorized, "Unauthenticated")
		if s := sourceNamed(t, ps.sources(t), body.Name); s != nil {
			t.Fatalf("a refused request added the source: %v", s)
		}
	})

	// checkSource checks a source object of an answer.
	checkSource := func(t *testing.T, what string, raw []byte, obj map[string]json.RawMessage) {
		t.Helper()
		if bytes.Contains(raw, []byte(password)) {
			t.Errorf("%s returns the registry's password: %s", what, raw)
		}
		if _, ok := obj["password"]; ok {
			t.Errorf("%s has a password field: %s", what, raw)
		}
		if got := psField[string](t, obj, "name"); got != body.Name {
			t.Errorf("%s: name %q, want %q", what, got, body.Name)
		}
		if got := psField[string](t, obj, "location"); got != body.Location {
			t.Errorf("%s: location %q, want %q", what, got, body.Location)
		}
		if got := psField[string](t, obj, "username"); got != user {
			t.Errorf("%s: username %q, want %q", what, got, user)
		}
		// The provider's PackageSource has IsTrusted = the answer's trusted.
		if raw, ok := obj["trusted"]; !ok || string(raw) != "true" {
			t.Errorf("%s: trusted is %s (present %v), want true: the PackageSource would not be trusted", what, raw, ok)
		}
	}

	t.Run("POST /v1/sources", func(t *testing.T) {
		code, h, b := ps.send(t, http.MethodPost, psRoutePath(t, http.MethodPost, "AddSource"), body)
		if code != http.StatusCreated {
			t.Fatalf("register %s: %d %s, want 201", body.Name, code, b)
		}
		if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, psAcceptJSON) {
			t.Errorf("register: Content-Type %q", ct)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(b, &obj); err != nil {
			t.Fatalf("register answer %s: %v", b, err)
		}
		checkSource(t, "the answer of POST /v1/sources", b, obj)
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("GET /v1/sources", func(t *testing.T) {
		code, _, b := ps.send(t, http.MethodGet, psRoutePath(t, http.MethodGet, "GetSources"), nil)
		if code != http.StatusOK {
			t.Fatalf("sources: %d %s", code, b)
		}
		s := sourceNamed(t, psObjects(t, b, "sources"), body.Name)
		if s == nil {
			t.Fatalf("GET /v1/sources does not list %s: %s", body.Name, b)
		}
		checkSource(t, "GET /v1/sources", b, s)
	})

	// PS C:\> Find-Package -ProviderName ContainerImage -Source private NanoServer
	t.Run("find through the source", func(t *testing.T) {
		q := url.Values{"name": {"NanoServer"}, "source": {body.Name}, "requiredVersion": {"10.0.10586.0"}}
		code, _, b := ps.send(t, http.MethodGet, psRoutePath(t, http.MethodGet, "FindImages")+"?"+q.Encode(), nil)
		var res api.FindResponse
		if err := json.Unmarshal(b, &res); code != http.StatusOK || err != nil {
			t.Fatalf("find: %d %s (%v)", code, b, err)
		}
		if len(res.Images) != 1 || res.Images[0].Source != body.Name || len(res.Warnings) != 0 {
			t.Fatalf("find NanoServer 10.0.10586.0 in %s: %s, want one entry of the source and no warning", body.Name, b)
		}
	})

	// PS C:\> Install-Package -ProviderName ContainerImage -Source private NanoServer
	t.Run("install through the source", func(t *testing.T) {
		passedBefore, _ := gate.counts()
		job := ps.install(t, psInstallBody{Name: "NanoServer", RequiredVersion: "10.0.10586.0", Source: body.Name})
		result := ps.events(t, job.ID, time.Minute).untilResult(t, job.ID)
		if result.Job.State != api.JobSucceeded {
			t.Fatalf("install through %s ended %s: %+v", body.Name, result.Job.State, result.Job.Error)
		}
		imgs := ps.installed(t, "NanoServer")
		if len(imgs) != 1 || imgs[0].Version != "10.0.10586.0" || imgs[0].Source != body.Name {
			t.Fatalf("installed: %+v, want NanoServer 10.0.10586.0 from %s", imgs, body.Name)
		}
		passed, refused := gate.counts()
		t.Logf("the registry forwarded %d requests with the credentials (%d during the install) and challenged %d", passed, passed-passedBefore, refused)
		if passed-passedBefore == 0 {
			t.Fatal("the install fetched nothing through the registry's credentials")
		}
	})

	// The credentials and providerd's token do not cross.
	if gate.received(ps.token) {
		t.Error("providerd's token reached the registry")
	}
	if !gate.received("Basic ") {
		t.Error("no Basic credentials reached the registry")
	}

	// The same registry with a wrong password: the install is refused, so
	// the successes above owe to the registered credentials.
	t.Run("wrong registry password", func(t *testing.T) {
		wrong := body
		wrong.Name, wrong.Password = "wrongpass", "not-the-password"
		// The source's first sync starts with its registration.
		_, refusedBefore := gate.counts()
		if code, _, b := ps.send(t, http.MethodPost, psRoutePath(t, http.MethodPost, "AddSource"), wrong); code != http.StatusCreated {
			t.Fatalf("register %s: %d %s", wrong.Name, code, b)
		}
		code, _, b := ps.send(t, http.MethodPost, psRoutePath(t, http.MethodPost, "InstallImage"),
			psInstallBody{Name: "WindowsServerCore", RequiredVersion: "10.0.14393.0", Source: wrong.Name})
		var env api.ErrorResponse
		if err := json.Unmarshal(b, &env); err != nil || code < 400 || env.Error.Code == "" {
			t.Fatalf("install through %s, whose password is wrong: %d %s, want an error", wrong.Name, code, b)
		}
		t.Logf("install through a source with the wrong password: %d %s: %s", code, env.Error.Code, env.Error.Message)
		if _, refused := gate.counts(); refused == refusedBefore {
			t.Error("the registry refused nothing")
		}
		if basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + wrong.Password)); !gate.received("Basic " + basic) {
			t.Error("the wrong password did not reach the registry")
		}
		// The user learns that the registry refused the credentials.
		if !strings.Contains(env.Error.Message, "401") {
			t.Errorf("the error %q does not say that the registry refused the credentials", env.Error.Message)
		}
		// providerd's own 401 means its token is wrong: a registry's
		// refusal must not look like it.
		if code == http.StatusUnauthorized || env.Error.Code == "Unauthenticated" {
			t.Errorf("the registry's refusal is answered %d %s, as a wrong providerd token would be", code, env.Error.Code)
		}
	})
}

// psSettled waits, at most 5 s, until the bytes that proxy served stop
// growing, and returns them, summed over blobs.
func psSettled(proxy *faultProxy, blobs []string) int64 {
	sum := func() int64 {
		var n int64
		for _, d := range blobs {
			_, _, served := proxy.counts(d)
			n += served
		}
		return n
	}
	last := sum()
	for range 25 {
		time.Sleep(200 * time.Millisecond)
		now := sum()
		if now == last {
			return now
		}
		last = now
	}
	return last
}

// TestPowerShellInstallCancelReplay replays Install-Package canceled by
// the user ($request.IsCanceled), through a source whose blobs come slowly:
// the install, its event stream until a blob has bytes done, the cancel,
// the rest of the same stream to its result, the job, and then a second
// install, at full speed, which fetches only what the first did not.
func TestPowerShellInstallCancelReplay(t *testing.T) {
	cat := startCatalogd(t, true)
	m := manifestOf(t, cat, "nanoserver", "10.0.10586.0")
	blobs := []string{m.Config.Digest.String()}
	imageSize := m.Config.Size
	for _, l := range m.Layers {
		blobs = append(blobs, l.Digest.String())
		imageSize += l.Size
	}
	proxy := newFaultProxy(t, cat.URL(""))
	// About 4 s for the image: long enough to cancel in the middle.
	rate := max(imageSize/4, 64<<10)
	proxy.set(func(p *faultProxy) { p.bytesPerSec = rate })
	p := startProviderd(t, proxy.URL, "")
	ps := newPSTransport(t, p)
	req := psInstallBody{Name: "NanoServer", RequiredVersion: "10.0.10586.0", Source: "catalog"}
	t.Logf("NanoServer 10.0.10586.0: %d blobs, %d bytes, served at %d bytes/s", len(blobs), imageSize, rate)

	start := time.Now()
	job := ps.install(t, req)
	if job.State != api.JobQueued && job.State != api.JobRunning {
		t.Fatalf("the job of the install is %s at once", job.State)
	}
	stream := ps.events(t, job.ID, time.Minute)

	// The stream starts with a state event that carries the job.
	first, err := stream.next()
	if err != nil || first.Type != api.EventState || first.Job == nil || first.Job.ID != job.ID {
		t.Fatalf("the first event of job %s: %+v (%v), want a state event with the job", job.ID, first, err)
	}

	// Progress -> Write-Progress, until a layer has bytes done.
	var done *api.BlobProgress
	for n := 0; done == nil; n++ {
		if n == maxEvents {
			t.Fatalf("no progress with bytes done within %d events", maxEvents)
		}
		ev, err := stream.next()
		if err != nil {
			t.Fatalf("the events of job %s ended before any progress: %v", job.ID, err)
		}
		switch ev.Type {
		case api.EventResult:
			t.Fatalf("job %s ended %s before it could be canceled (%v in): the throttle is too weak", job.ID, ev.State, time.Since(start))
		case api.EventProgress:
			if ev.Blob != nil && ev.Blob.Kind == "layer" && ev.Blob.Done > 0 {
				done = ev.Blob
			}
		}
	}
	t.Logf("progress %s %d/%d bytes after %v: cancel", done.Digest, done.Done, done.Total, time.Since(start).Round(time.Millisecond))

	// $request.IsCanceled -> POST /v1/jobs/{id}/cancel.
	code, _, b := ps.send(t, http.MethodPost, psRoutePath(t, http.MethodPost, "CancelJob", "id", job.ID), nil)
	var canceled api.Job
	if err := json.Unmarshal(b, &canceled); code != http.StatusOK || err != nil || canceled.ID != job.ID {
		t.Fatalf("cancel: %d %s (%v), want 200 with the job", code, b, err)
	}
	t.Logf("the answer of the cancel: state %s", canceled.State)
	if canceled.State != api.JobCanceled {
		t.Errorf("the answer of the cancel has state %q, want %q", canceled.State, api.JobCanceled)
	}

	// The provider reads the same stream on to the result, and writes no
	// error.
	result := stream.untilResult(t, job.ID)
	if result.Job.State != api.JobCanceled || result.State != api.JobCanceled {
		t.Fatalf("the result event: state %q, job state %q, want %q", result.State, result.Job.State, api.JobCanceled)
	}
	t.Logf("the result event: %q, error %+v, after %v", result.Message, result.Job.Error, time.Since(start).Round(time.Millisecond))

	code, _, b = ps.send(t, http.MethodGet, psRoutePath(t, http.MethodGet, "GetJob", "id", job.ID), nil)
	var got api.Job
	if err := json.Unmarshal(b, &got); code != http.StatusOK || err != nil || got.State != api.JobCanceled {
		t.Fatalf("GET /v1/jobs/%s after the cancel: %d %s (%v), want the job canceled", job.ID, code, b, err)
	}
	if imgs := ps.installed(t, req.Name); len(imgs) != 0 {
		t.Fatalf("a canceled install left images: %+v", imgs)
	}

	// The downloaded data stays: in the store's ingests, or committed.
	var kept int64
	ingests, _ := filepath.Glob(filepath.Join(p.Root, "content", "ingest", "*", "data"))
	for _, f := range ingests {
		if fi, err := os.Stat(f); err == nil {
			kept += fi.Size()
		}
	}
	for _, d := range blobs {
		if fi, err := os.Stat(filepath.Join(p.Root, "content", "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))); err == nil {
			kept += fi.Size()
		}
	}
	t.Logf("%d bytes of the image stay in the store after the cancel", kept)
	if kept < done.Done {
		t.Fatalf("the canceled install kept %d bytes, fewer than the %d done", kept, done.Done)
	}

	// A second install, at full speed, resumes.
	before := psSettled(proxy, blobs)
	t.Logf("the source served %d bytes before the cancel; %d stay in the store", before, kept)
	proxy.set(func(p *faultProxy) { p.bytesPerSec = 0 })
	again := ps.install(t, req)
	if again.ID == job.ID {
		t.Fatalf("the second install answers the canceled job %s", job.ID)
	}
	if r := ps.events(t, again.ID, time.Minute).untilResult(t, again.ID); r.Job.State != api.JobSucceeded {
		t.Fatalf("the second install ended %s: %+v", r.Job.State, r.Job.Error)
	}
	imgs := ps.installed(t, req.Name)
	if len(imgs) != 1 || imgs[0].Version != req.RequiredVersion {
		t.Fatalf("installed after the second install: %+v", imgs)
	}
	fetched := psSettled(proxy, blobs) - before
	var ranged int
	for _, d := range blobs {
		_, r, _ := proxy.counts(d)
		ranged += r
	}
	t.Logf("the second install fetched %d of the image's %d bytes (%d ranged GETs); %d were done at the cancel; %v in all",
		fetched, imageSize, ranged, done.Done, time.Since(start).Round(time.Millisecond))
	if fetched >= imageSize {
		t.Fatalf("the second install fetched %d bytes, not fewer than the image's %d: the canceled download did not stay", fetched, imageSize)
	}
	if fetched > imageSize-done.Done {
		t.Errorf("the second install fetched %d bytes, more than the %d that were not done at the cancel", fetched, imageSize-done.Done)
	}
}

// TestPowerShellUnregisterPackageSourceReplay replays
//
//	PS C:\> Unregister-PackageSource -ProviderName ContainerImage -Name N
//
// with N a source's name, then a source's location, then a name that no
// source has: the listing, the lookup by name or location, the DELETE, and
// what the provider answers.
func TestPowerShellUnregisterPackageSourceReplay(t *testing.T) {
	cat := startCatalogd(t, false)
	p := startProviderd(t, cat.URL(""), "")
	ps := newPSTransport(t, p)
	// Two more sources, each at a location of its own.
	registered := map[string]string{}
	for _, name := range []string{"byname", "bylocation"} {
		loc := newFlakySource(t, cat.URL("")).URL
		body := psRegisterBody{Name: name, Location: loc}
		if code, _, b := ps.send(t, http.MethodPost, psRoutePath(t, http.MethodPost, "AddSource"), body); code != http.StatusCreated {
			t.Fatalf("register %s: %d %s", name, code, b)
		}
		registered[name] = loc
	}

	// unregister replays the cmdlet with N: it returns the source that the
	// provider answers, name and location, or the error of the DELETE.
	type removed struct{ Name, Location string }
	unregister := func(t *testing.T, n string) (removed, int, []byte) {
		t.Helper()
		var hit removed
		for _, s := range ps.sources(t) {
			name, loc := psField[string](t, s, "name"), psField[string](t, s, "location")
			if name == n || loc == n {
				if hit.Name != "" {
					t.Fatalf("%q is the name or location of both %s and %s", n, hit.Name, name)
				}
				hit = removed{Name: name, Location: loc}
			}
		}
		target := n
		if hit.Name != "" {
			target = hit.Name
		}
		code, h, b := ps.send(t, http.MethodDelete, psRoutePath(t, http.MethodDelete, "RemoveSource", "name", target), nil)
		if code != http.StatusNoContent {
			return hit, code, b
		}
		if len(b) != 0 {
			t.Errorf("DELETE /v1/sources/%s: 204 with a body: %q", target, b)
		}
		if cl := h.Get("Content-Length"); cl != "" && cl != "0" {
			t.Errorf("DELETE /v1/sources/%s: 204 with Content-Length %s", target, cl)
		}
		return hit, code, b
	}

	for _, c := range []struct {
		name string
		n    string // -Name
		want string // the source removed
	}{
		{"by name", "byname", "byname"},
		{"by location", registered["bylocation"], "bylocation"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, code, b := unregister(t, c.n)
			if code != http.StatusNoContent {
				t.Fatalf("Unregister-PackageSource -Name %s: DELETE gave %d %s, want 204", c.n, code, b)
			}
			// The answer is the removed source with its location,
			// Registered=false: the location comes from the listing.
			if got.Name != c.want || got.Location == "" {
				t.Fatalf("the listing gave the source %+v for %q, want %s with its location", got, c.n, c.want)
			}
			if got.Location != registered[c.want] {
				t.Fatalf("the listing gave %s the location %q, want the registered %q", c.want, got.Location, registered[c.want])
			}
			sources := ps.sources(t)
			if s := sourceNamed(t, sources, c.want); s != nil {
				t.Fatalf("%s is still listed after the DELETE: %v", c.want, s)
			}
			if sourceNamed(t, sources, "catalog") == nil {
				t.Fatal("the DELETE of one source removed catalog too")
			}
		})
	}

	// A source that the listing lacks: the DELETE is still sent with N, and
	// its 404 NotFound is the error.
	t.Run("unknown", func(t *testing.T) {
		got, code, b := unregister(t, "no-such-source")
		if got.Name != "" {
			t.Fatalf("the listing has a source for no-such-source: %+v", got)
		}
		e := wantEnvelope(t, "DELETE /v1/sources/no-such-source", code, b, http.StatusNotFound, "NotFound")
		if !strings.Contains(e.Message, "no-such-source") {
			t.Errorf("the error %q does not name the source", e.Message)
		}
		if got := psErrorCategories(t)[e.Code]; got != "ObjectNotFound" {
			t.Errorf("the module maps %s to %q, want ObjectNotFound", e.Code, got)
		}
	})
}

// TestPowerShellJobTokenReplay checks, on TCP, that a running job's
// endpoints the module uses refuse a request without providerd's token or
// with a wrong one (401, the envelope Unauthenticated) before any event is
// streamed, and answer the module's request with it.
func TestPowerShellJobTokenReplay(t *testing.T) {
	cat := startCatalogd(t, true)
	proxy := newFaultProxy(t, cat.URL(""))
	proxy.set(func(p *faultProxy) { p.bytesPerSec = 256 << 10 }) // the job runs while the requests are made
	p := startProviderd(t, proxy.URL, "")
	ps := newPSTransport(t, p)
	job := ps.install(t, psInstallBody{Name: "NanoServer", RequiredVersion: "10.0.10586.0", Source: "catalog"})
	defer ps.send(t, http.MethodPost, psRoutePath(t, http.MethodPost, "CancelJob", "id", job.ID), nil)

	for _, r := range []struct {
		method, path, accept string
	}{
		{http.MethodGet, psRoutePath(t, http.MethodGet, "GetJob", "id", job.ID), psAcceptJSON},
		{http.MethodGet, psRoutePath(t, http.MethodGet, "GetJobEvents", "id", job.ID), psAcceptEvents},
		{http.MethodPost, psRoutePath(t, http.MethodPost, "CancelJob", "id", job.ID), psAcceptJSON},
	} {
		for _, token := range []struct{ name, value string }{{"no token", ""}, {"a wrong token", "not-" + ps.token}} {
			t.Run(r.method+" "+strings.Replace(r.path, job.ID, "{id}", 1)+" "+token.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				resp, err := ps.hc.Do(ps.request(t, ctx, r.method, r.path, r.accept, token.value, nil))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				if err != nil {
					t.Fatalf("reading the refusal: %v", err)
				}
				if ct := resp.Header.Get("Content-Type"); ct == psAcceptEvents {
					t.Fatalf("the refusal is an event stream: %s", b)
				}
				wantEnvelope(t, r.method+" "+r.path+" with "+token.name, resp.StatusCode, b, http.StatusUnauthorized, "Unauthenticated")
			})
		}
	}

	// The job went on, and the module's requests are answered.
	code, _, b := ps.send(t, http.MethodGet, psRoutePath(t, http.MethodGet, "GetJob", "id", job.ID), nil)
	var got api.Job
	if err := json.Unmarshal(b, &got); code != http.StatusOK || err != nil || got.ID != job.ID {
		t.Fatalf("GET /v1/jobs/%s with the token: %d %s (%v)", job.ID, code, b, err)
	}
	if got.State != api.JobRunning && got.State != api.JobQueued {
		t.Errorf("the job is %s after the refused requests, want it still running", got.State)
	}
	first, err := ps.events(t, job.ID, 10*time.Second).next()
	if err != nil || first.Type != api.EventState || first.JobID != job.ID {
		t.Fatalf("the events with the token: first %+v (%v)", first, err)
	}
}
