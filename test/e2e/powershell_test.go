package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api"
)

// repoRoot is the repository's root folder.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TestPowerShellSyntax parses every PowerShell file under scripts/ with the
// tree-sitter PowerShell grammar that scripts/install-tools.sh installs in
// .tools/npm.
func TestPowerShellSyntax(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the PowerShell syntax check needs it")
	}
	root := repoRoot(t)
	npmDir := filepath.Join(root, ".tools", "npm")
	if _, err := os.Stat(filepath.Join(npmDir, "node_modules", "tree-sitter-powershell")); err != nil {
		t.Skipf("the tree-sitter PowerShell grammar is not in %s: run scripts/install-tools.sh powershell-grammar", npmDir)
	}
	cmd := exec.Command(node, "--no-deprecation", filepath.Join("scripts", "check-powershell.mjs"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CP_NPM_DIR="+npmDir, "NODE_PATH="+filepath.Join(npmDir, "node_modules"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("check-powershell: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "ContainerImage") && !strings.Contains(string(out), "files parse") {
		t.Fatalf("check-powershell reported nothing:\n%s", out)
	}
	t.Logf("%s", out)
}

// psRoute is one line of the module's route table.
type psRoute struct {
	Name, Method, Path string
	Query              []string
}

var (
	psRouteTable = regexp.MustCompile(`(?s)\$script:Routes\s*=\s*\[ordered\]@\{(.*?)\n\}`)
	psRouteLine  = regexp.MustCompile(`(?m)^\s*(\w+)\s*=\s*@\{\s*Method\s*=\s*'(\w+)'\s*;\s*Path\s*=\s*'([^']+)'\s*;\s*Query\s*=\s*@\(([^)]*)\)\s*\}\s*$`)
	psQuoted     = regexp.MustCompile(`'([^']*)'`)
)

// readRouteTable extracts $script:Routes from ContainerImage.psm1. Every
// non-blank line of the table must be a route line, so that a route the
// regexp does not understand fails the test instead of going unchecked.
func readRouteTable(t *testing.T) []psRoute {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "scripts", "ContainerImage", "ContainerImage.psm1"))
	if err != nil {
		t.Fatal(err)
	}
	m := psRouteTable.FindSubmatch(src)
	if m == nil {
		t.Fatal("ContainerImage.psm1 has no $script:Routes = [ordered]@{ ... } table")
	}
	var routes []psRoute
	for _, line := range strings.Split(string(m[1]), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		lm := psRouteLine.FindStringSubmatch(line)
		if lm == nil {
			t.Fatalf("route table line not understood: %q", line)
		}
		r := psRoute{Name: lm[1], Method: lm[2], Path: lm[3]}
		for _, q := range psQuoted.FindAllStringSubmatch(lm[4], -1) {
			r.Query = append(r.Query, q[1])
		}
		routes = append(routes, r)
	}
	if len(routes) == 0 {
		t.Fatal("the route table is empty")
	}
	return routes
}

// psPlaceholders fill the path variables of the route table.
var psPlaceholders = strings.NewReplacer("{id}", "0123456789abcdef", "{name}", "no-such-source", "{ref}", "no-such-container")

// psQueryValue is a valid value of a query parameter: booleans must parse.
func psQueryValue(name string) string {
	switch name {
	case "allVersions", "force", "follow":
		return "false"
	case "requiredVersion", "minimumVersion", "maximumVersion":
		return "1.0.0.0"
	}
	return "no-such-image"
}

// TestPowerShellRouteTable checks every line of the module's route table
// against the live router of the real providerd: the route exists with that
// method, and every query parameter the module sends is accepted.
func TestPowerShellRouteTable(t *testing.T) {
	routes := readRouteTable(t)
	cat := startCatalogd(t, false)
	p := startProviderd(t, "http://"+cat.Addr, "")

	seen := map[string]bool{}
	for _, r := range routes {
		t.Run(r.Name, func(t *testing.T) {
			if seen[r.Name] {
				t.Fatalf("route %s is declared twice", r.Name)
			}
			seen[r.Name] = true
			if strings.Contains(psPlaceholders.Replace(r.Path), "{") {
				t.Fatalf("route %s: path %s has a variable without a placeholder", r.Name, r.Path)
			}
			q := url.Values{}
			for _, k := range r.Query {
				q.Set(k, psQueryValue(k))
			}
			u := p.URL(psPlaceholders.Replace(r.Path))
			if len(q) > 0 {
				u += "?" + q.Encode()
			}
			var body io.Reader
			if r.Method == http.MethodPost || r.Method == http.MethodPut {
				body = strings.NewReader("{}")
			}
			req, err := http.NewRequest(r.Method, u, body)
			if err != nil {
				t.Fatal(err)
			}
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			var env api.ErrorResponse
			_ = json.Unmarshal(b, &env)
			msg := env.Error.Message
			switch {
			case resp.StatusCode == http.StatusNotFound && strings.HasPrefix(msg, "no route"):
				t.Fatalf("%s %s: providerd has no such route: %s", r.Method, u, b)
			case resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusNotImplemented:
				t.Fatalf("%s %s: %d, the route does not take %s: %s", r.Method, u, resp.StatusCode, r.Method, b)
			case resp.StatusCode == http.StatusBadRequest && (strings.Contains(msg, "unknown query parameter") || strings.Contains(msg, "takes no query parameter")):
				t.Fatalf("%s %s: a declared query parameter is refused: %s", r.Method, u, b)
			case resp.StatusCode >= 500:
				t.Fatalf("%s %s: %d: %s", r.Method, u, resp.StatusCode, b)
			}
			t.Logf("%s %s: %d %s", r.Method, u, resp.StatusCode, strings.TrimSpace(string(b)))
		})
	}

	// The check above is only as good as providerd's refusal of unknown
	// parameters: make sure it still refuses one.
	t.Run("unknown parameter refused", func(t *testing.T) {
		code, b := p.call(t, http.MethodGet, "/v1/images?noSuchParameter=1", nil, nil)
		if code != http.StatusBadRequest || !strings.Contains(b, "noSuchParameter") {
			t.Fatalf("GET /v1/images?noSuchParameter=1: %d %s, want 400 naming the parameter", code, b)
		}
	})
}
