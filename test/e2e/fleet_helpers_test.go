package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// registryConfig is the configuration of the CNCF distribution registry
// (v3) that the e2e tests start: filesystem storage under root, deletes
// enabled, plain HTTP on the loopback address addr, errors only in its
// log. extra is appended as is: more top-level sections, e.g. proxy.
func registryConfig(root, addr, extra string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, yamlString(root), addr, extra)
}

// yamlString quotes s for YAML: a JSON string is a YAML double-quoted
// scalar.
func yamlString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// startRegistry starts the CNCF distribution registry with
// registryConfig(…, extra) on a free loopback port, stopped when the test
// ends, and returns its host:port once its /v2/ answers 200. It skips the
// test when the registry is not installed.
func startRegistry(t *testing.T, extra string) string {
	t.Helper()
	bin := tool(t, "registry")
	addr := freeAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(registryConfig(filepath.Join(dir, "data"), addr, extra)), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, bin, []string{"OTEL_SDK_DISABLED=true"}, "serve", cfg)
	waitHTTP(t, "http://"+addr+"/v2/")
	return addr
}

// startPullThroughCache starts the distribution registry as a pull-through
// cache of upstream (proxy.remoteurl), which it reaches with upstream's
// user and password: the registry answers catalogd's Bearer challenge of
// /v2/ by a GET of catalogd's /token with those credentials in Basic
// auth, then pulls with the token. It returns the cache's URL,
// http://host:port.
func startPullThroughCache(t *testing.T, upstream *catalogd) string {
	t.Helper()
	if upstream.Password == "" {
		t.Fatalf("catalogd on %s has no password file: the cache would pull anonymously", upstream.Addr)
	}
	proxy := fmt.Sprintf("proxy:\n  remoteurl: %s\n  username: %s\n  password: %s\n",
		yamlString(upstream.URL("")), yamlString(upstream.User), yamlString(upstream.Password))
	return "http://" + startRegistry(t, proxy)
}

// loggedRequest is a request line of catalogd's log
// (server/middleware.Logging).
type loggedRequest struct {
	Method    string
	Path      string
	Status    int
	RequestID string
	User      string // who the request authenticated as, when it did
}

// parseLogLine reads the fields of a log line of logrus, in either of
// catalogd's --log-format: json (one object) or text (key=value pairs,
// a value quoted as Go quotes strings when it needs to be). ok is false
// for a line that is neither.
func parseLogLine(line string) (fields map[string]string, ok bool) {
	line = strings.TrimSpace(line)
	if strings.HasPrefix(line, "{") {
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber()
		if d.Decode(&m) != nil {
			return nil, false
		}
		fields = make(map[string]string, len(m))
		for k, v := range m {
			fields[k] = fmt.Sprint(v)
		}
		return fields, true
	}
	fields = map[string]string{}
	for rest := line; rest != ""; {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			break
		}
		key, after, found := strings.Cut(rest, "=")
		if !found || key == "" || strings.ContainsAny(key, " \"") {
			return nil, false
		}
		var value string
		if strings.HasPrefix(after, `"`) {
			q, err := strconv.QuotedPrefix(after)
			if err != nil {
				return nil, false
			}
			value, _ = strconv.Unquote(q) // QuotedPrefix checked it
			rest = after[len(q):]
		} else {
			value, rest, _ = strings.Cut(after, " ")
		}
		fields[key] = value
	}
	return fields, len(fields) > 0
}

// catalogdRequests reads the request lines of c's log, in the order
// catalogd wrote them; other lines are skipped. A line is written when
// its request's handler has returned, which may be a moment after the
// client has read the response: see settledRequests.
func catalogdRequests(t *testing.T, c *catalogd) []loggedRequest {
	t.Helper()
	f, err := os.Open(c.Log)
	if err != nil {
		t.Fatalf("catalogd's log: %v", err)
	}
	defer f.Close()
	var out []loggedRequest
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields, ok := parseLogLine(sc.Text())
		if !ok || fields["msg"] != "request" || fields["method"] == "" || fields["path"] == "" {
			continue
		}
		status, err := strconv.Atoi(fields["status"])
		if err != nil {
			continue
		}
		out = append(out, loggedRequest{
			Method: fields["method"], Path: fields["path"], Status: status,
			RequestID: fields["request_id"], User: fields["user"],
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("catalogd's log %s: %v", c.Log, err)
	}
	return out
}

// settledRequests is catalogdRequests once the lines of the requests
// answered so far are written: it sends a request of its own (GET /v2/,
// with an X-Request-Id that catalogd keeps), waits up to 10 s for its line
// and gives the handlers that answered before it a further 100 ms.
func settledRequests(t *testing.T, c *catalogd) []loggedRequest {
	t.Helper()
	id := fmt.Sprintf("e2e-log-mark-%d", time.Now().UnixNano())
	req, err := http.NewRequest(http.MethodGet, c.URL("/v2/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Request-Id", id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, r := range catalogdRequests(t, c) {
			if r.RequestID == id {
				time.Sleep(100 * time.Millisecond)
				return catalogdRequests(t, c)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("catalogd did not log the request %s within 10 s", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// blobPath matches the path of a blob of the distribution API, the digest
// in its second group.
var blobPath = regexp.MustCompile(`^/v2/(.+)/blobs/(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)

// blobGets counts, per blob digest, the GETs that catalogd answered with
// the blob (200, or 206 for a range): HEADs, refusals and errors do not
// count.
func blobGets(reqs []loggedRequest) map[string]int {
	out := map[string]int{}
	for _, r := range reqs {
		if r.Method != http.MethodGet || (r.Status != http.StatusOK && r.Status != http.StatusPartialContent) {
			continue
		}
		if m := blobPath.FindStringSubmatch(r.Path); m != nil {
			out[m[2]]++
		}
	}
	return out
}

// describeRequests lists reqs a line each, for a failure message.
func describeRequests(reqs []loggedRequest) string {
	var b bytes.Buffer
	for _, r := range reqs {
		fmt.Fprintf(&b, "%s %s %d %s\n", r.Method, r.Path, r.Status, r.User)
	}
	return b.String()
}

// TestParseLogLine reads request lines as catalogd writes them in each
// log format, and refuses lines that are neither.
func TestParseLogLine(t *testing.T) {
	const blob = "/v2/microsoft/iis/blobs/sha256:8d8f0ca5cfae6a5431986426671e8db19ad6981d5302477973bf1de3a2a3d37a"
	for _, tc := range []struct {
		name string
		line string
		want map[string]string // nil: not a log line
	}{
		{
			name: "text",
			line: `time="2026-12-04T21:39:15Z" level=info msg=request bytes=4198958 duration=4.978ms method=GET path="` + blob + `" request_id=989d2faa37c20255bf833cbc0dcbfa67 status=200`,
			want: map[string]string{"time": "2026-12-04T21:39:15Z", "level": "info", "msg": "request", "bytes": "4198958", "duration": "4.978ms",
				"method": "GET", "path": blob, "request_id": "989d2faa37c20255bf833cbc0dcbfa67", "status": "200"},
		},
		{
			name: "text with escapes",
			line: `level=info msg=request duration="262µs" error="GET /v2/: \"authentication\" required" method=GET path=/v2/ status=401 user=admin`,
			want: map[string]string{"level": "info", "msg": "request", "duration": "262µs", "error": `GET /v2/: "authentication" required`,
				"method": "GET", "path": "/v2/", "status": "401", "user": "admin"},
		},
		{
			name: "json",
			line: `{"bytes":4198958,"duration":"4.978ms","level":"info","method":"GET","msg":"request","path":"` + blob + `","request_id":"989d","status":200,"time":"2026-12-04T21:39:15Z"}`,
			want: map[string]string{"time": "2026-12-04T21:39:15Z", "level": "info", "msg": "request", "bytes": "4198958", "duration": "4.978ms",
				"method": "GET", "path": blob, "request_id": "989d", "status": "200"},
		},
		{name: "plain text", line: "seeding /tmp/root (base layers 4 MiB)"},
		{name: "unterminated quote", line: `msg="request path=/v2/`},
		{name: "broken json", line: `{"msg":"request"`},
		{name: "empty", line: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseLogLine(tc.line)
			if ok != (tc.want != nil) {
				t.Fatalf("parseLogLine(%q): ok %v, fields %v", tc.line, ok, got)
			}
			if ok && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseLogLine(%q):\n got %v\nwant %v", tc.line, got, tc.want)
			}
		})
	}
	reqs := []loggedRequest{
		{Method: http.MethodGet, Path: "/v2/a/blobs/sha256:" + strings.Repeat("ab", 32), Status: http.StatusOK},
		{Method: http.MethodGet, Path: "/v2/b/c/blobs/sha256:" + strings.Repeat("ab", 32), Status: http.StatusPartialContent},
		{Method: http.MethodHead, Path: "/v2/a/blobs/sha256:" + strings.Repeat("ab", 32), Status: http.StatusOK},
		{Method: http.MethodGet, Path: "/v2/a/blobs/sha256:" + strings.Repeat("ab", 32), Status: http.StatusUnauthorized},
		{Method: http.MethodGet, Path: "/v2/a/manifests/sha256:" + strings.Repeat("ab", 32), Status: http.StatusOK},
		{Method: http.MethodGet, Path: "/v2/a/blobs/uploads/x", Status: http.StatusOK},
	}
	if got := blobGets(reqs); !reflect.DeepEqual(got, map[string]int{"sha256:" + strings.Repeat("ab", 32): 2}) {
		t.Fatalf("blobGets: %v, want the 200 and the 206 of the blob", got)
	}
}
