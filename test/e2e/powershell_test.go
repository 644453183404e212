package e2e

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
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

	// A file that does not parse fails the check, naming the file.
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "Broken.psm1"), []byte("function Get-X {\n  if ($true) {\n    'x'\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(node, "--no-deprecation", filepath.Join("scripts", "check-powershell.mjs"), broken)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CP_NPM_DIR="+npmDir)
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Broken.psm1") {
		t.Fatalf("check-powershell passed a file with an unclosed brace (%v):\n%s", err, out)
	}
	t.Logf("a broken file: %s", strings.TrimSpace(string(out)))
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

// readRouteTable extracts $script:Routes from ContainerProviderApi.psm1,
// the module that the cmdlets and the provider share. Every non-blank line
// of the table must be a route line, so that a route the regexp does not
// understand fails the test instead of going unchecked.
func readRouteTable(t *testing.T) []psRoute {
	t.Helper()
	m := psRouteTable.FindSubmatch(psModuleFile(t, psAPIFile))
	if m == nil {
		t.Fatal(psAPIFile + " has no $script:Routes = [ordered]@{ ... } table")
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
			req.Header.Set("Authorization", "Bearer "+p.Token(t))
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

// psModuleFile reads a file of scripts/ContainerImage.
func psModuleFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "scripts", "ContainerImage", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// psFormatFile is the part of ContainerImage.format.ps1xml that the replay
// reads: the properties that each table view displays.
type psFormatFile struct {
	Views []struct {
		Name       string   `xml:"Name"`
		TypeNames  []string `xml:"ViewSelectedBy>TypeName"`
		Properties []string `xml:"TableControl>TableRowEntries>TableRowEntry>TableColumnItems>TableColumnItem>PropertyName"`
	} `xml:"ViewDefinitions>View"`
}

// psDisplayedProperties returns the properties that the format file's table
// view of typeName displays, in column order.
func psDisplayedProperties(t *testing.T, typeName string) []string {
	t.Helper()
	var f psFormatFile
	if err := xml.Unmarshal(psModuleFile(t, "ContainerImage.format.ps1xml"), &f); err != nil {
		t.Fatalf("ContainerImage.format.ps1xml: %v", err)
	}
	for _, v := range f.Views {
		for _, tn := range v.TypeNames {
			if tn == typeName {
				if len(v.Properties) == 0 {
					t.Fatalf("the view of %s displays no property", typeName)
				}
				return v.Properties
			}
		}
	}
	t.Fatalf("ContainerImage.format.ps1xml has no view of %s", typeName)
	return nil
}

// psAPIFile is the module that the cmdlets and the provider share: the
// route table, the error categories, the source states and the views.
const psAPIFile = "ContainerProviderApi.psm1"

var (
	psViewLine = regexp.MustCompile(`^\s*(\w+)\s*=\s*'([^':]*)(?::(\w+))?'\s*$`)
)

// psFunctionBody returns the text of function name in the module file
// file, from "function name {" to the first line that is a lone "}".
func psFunctionBody(t *testing.T, file, name string) string {
	t.Helper()
	src := string(psModuleFile(t, file))
	start := strings.Index(src, "function "+name+" {")
	if start < 0 {
		t.Fatalf("%s has no function %s", file, name)
	}
	body := src[start:]
	if end := strings.Index(body, "\n}"); end >= 0 {
		body = body[:end]
	}
	return body
}

// psView is one property of a view of $script:Views: the path of the JSON
// value it comes from (keys joined by "/") and the kind that converts it
// ("" for none).
type psView struct {
	Path, Kind string
}

// psViews reads view (ContainerImage, ContainerImageSource, ...) of
// $script:Views in ContainerProviderApi.psm1: each property of the objects
// the module writes, with the JSON it comes from. Every non-blank,
// non-comment line of the view must be a property line.
func psViews(t *testing.T, view string) map[string]psView {
	t.Helper()
	src := string(psModuleFile(t, psAPIFile))
	start := strings.Index(src, "\n    "+view+" ")
	if start < 0 || !strings.Contains(src[start:start+80], "= [ordered]@{") {
		t.Fatalf("%s has no view %s in $script:Views", psAPIFile, view)
	}
	block := src[start:]
	block = block[strings.Index(block, "{")+1 : strings.Index(block, "\n    }")]
	out := map[string]psView{}
	for _, line := range strings.Split(block, "\n") {
		if l := strings.TrimSpace(line); l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		m := psViewLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("view %s: line not understood: %q", view, line)
		}
		out[m[1]] = psView{Path: m[2], Kind: m[3]}
	}
	if len(out) == 0 {
		t.Fatalf("view %s reads no JSON key", view)
	}
	return out
}

// psConverterKeys maps each property of view to the path of the JSON value
// it comes from: Name = 'name' is "name", Entries = 'status/entries' is
// "status/entries", and a property that a kind computes from a JSON value
// (State = 'status:state') is that value's path, "status".
func psConverterKeys(t *testing.T, view string) map[string]string {
	t.Helper()
	keys := map[string]string{}
	for prop, v := range psViews(t, view) {
		keys[prop] = v.Path
	}
	return keys
}

// psLookup returns the JSON value at path (keys joined by "/") in obj.
func psLookup(t *testing.T, obj map[string]json.RawMessage, path string) (json.RawMessage, bool) {
	t.Helper()
	keys := strings.Split(path, "/")
	for i, k := range keys {
		raw, ok := obj[k]
		if !ok {
			return nil, false
		}
		if i == len(keys)-1 {
			return raw, true
		}
		obj = nil
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			return nil, false
		}
	}
	return nil, false
}

// psReplay sends the request that Invoke-ContainerProviderApi builds for a
// route of the table: path variables filled and escaped, only declared query
// parameters, empty values and false switches left out, Body as JSON, the
// module's headers. It returns the status and the raw answer.
func psReplay(t *testing.T, p *providerd, routes map[string]psRoute, name string, pathValues map[string]string, query map[string]any, body any) (int, []byte) {
	t.Helper()
	r, ok := routes[name]
	if !ok {
		t.Fatalf("the route table has no route %s", name)
	}
	path := r.Path
	for k, v := range pathValues {
		path = strings.ReplaceAll(path, "{"+k+"}", url.PathEscape(v))
	}
	if strings.Contains(path, "{") {
		t.Fatalf("route %s: path %s has an unfilled variable", name, path)
	}
	q := url.Values{}
	for k, v := range query {
		if !slices.Contains(r.Query, k) {
			t.Fatalf("route %s declares no query parameter %s", name, k)
		}
		switch v := v.(type) {
		case bool:
			if v {
				q.Set(k, "true")
			}
		case string:
			if v != "" {
				q.Set(k, v)
			}
		default:
			t.Fatalf("query parameter %s: unsupported value %T", k, v)
		}
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	// With the module's headers over TCP (psTransport).
	accept := psAcceptJSON
	if name == "GetJobEvents" {
		accept = psAcceptEvents
	}
	c := newPSTransport(t, p)
	code, _, b := c.sendAccept(t, c.token, r.Method, path, accept, body)
	return code, b
}

// psCheckDisplayed checks that obj, one JSON object of the API, carries the
// key behind every property that the format file displays for typeName,
// whose view is its name after "ContainerProvider.".
func psCheckDisplayed(t *testing.T, obj map[string]json.RawMessage, typeName string) {
	t.Helper()
	converter := strings.TrimPrefix(typeName, "ContainerProvider.")
	keys := psConverterKeys(t, converter)
	for _, prop := range psDisplayedProperties(t, typeName) {
		key, ok := keys[prop]
		if !ok {
			t.Fatalf("%s displays %s, which %s does not set from the JSON", typeName, prop, converter)
		}
		if _, ok := psLookup(t, obj, key); !ok {
			t.Fatalf("%s displays %s, but the API object has no %q: %v", typeName, prop, key, obj)
		}
	}
}

// psObjects decodes the array field of an API answer into raw objects.
func psObjects(t *testing.T, b []byte, field string) []map[string]json.RawMessage {
	t.Helper()
	var env map[string][]map[string]json.RawMessage
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return env[field]
}

// psField decodes the field at path (keys joined by "/") of a raw object
// (the zero value when absent).
func psField[T any](t *testing.T, obj map[string]json.RawMessage, key string) T {
	t.Helper()
	var v T
	if raw, ok := psLookup(t, obj, key); ok {
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("field %s: %v", key, err)
		}
	}
	return v
}

// TestPowerShellReferenceReplay replays, against real catalogd and
// providerd, the HTTP requests of each cmdlet's reference example, built
// from the module's route table, and checks the fields that the format file
// displays.
func TestPowerShellReferenceReplay(t *testing.T) {
	routes := map[string]psRoute{}
	for _, r := range readRouteTable(t) {
		routes[r.Name] = r
	}
	cat := startCatalogd(t, true)
	p := startProviderd(t, cat.URL(""), "")

	// PS C:\> Find-ContainerImage
	t.Run("Find-ContainerImage", func(t *testing.T) {
		code, b := psReplay(t, p, routes, "FindImages", nil, map[string]any{"name": "", "source": ""}, nil)
		if code != http.StatusOK {
			t.Fatalf("find: %d %s", code, b)
		}
		found := map[string]bool{}
		for _, e := range psObjects(t, b, "images") {
			name := psField[string](t, e, "name")
			found[name] = true
			if name == "NanoServer" {
				psCheckDisplayed(t, e, "ContainerProvider.ContainerImageInfo")
			}
		}
		for _, want := range []string{"NanoServer", "WindowsServerCore"} {
			if !found[want] {
				t.Fatalf("Find-ContainerImage does not list %s: %s", want, b)
			}
		}
	})

	// PS C:\> Install-ContainerImage -Name NanoServer -Version 10.0.10586.0
	// Downloaded in 0 hours, 0 minutes, 10 seconds.
	t.Run("Install-ContainerImage", func(t *testing.T) {
		req := map[string]any{
			"name": "NanoServer", "requiredVersion": "10.0.10586.0", "minimumVersion": "", "maximumVersion": "",
			"source": "", "force": false, "noParents": false,
		}
		code, b := psReplay(t, p, routes, "InstallImage", nil, nil, req)
		if code != http.StatusAccepted {
			t.Fatalf("install: %d %s", code, b)
		}
		var job api.Job
		if err := json.Unmarshal(b, &job); err != nil || job.ID == "" {
			t.Fatalf("install answer %s: %v", b, err)
		}
		// Install-ContainerImage follows the job on its event stream,
		// which ends with the result event, the job final.
		code, b = psReplay(t, p, routes, "GetJobEvents", map[string]string{"id": job.ID}, nil, nil)
		if code != http.StatusOK {
			t.Fatalf("job %s events: %d %s", job.ID, code, b)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		var last api.JobEvent
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Type != api.EventResult || last.Job == nil {
			t.Fatalf("job %s: the stream does not end with a result event: %s (%v)", job.ID, b, err)
		}
		job = *last.Job
		if job.State != api.JobSucceeded {
			t.Fatalf("job %s ended %s: %s", job.ID, job.State, b)
		}
		if !downloadedIn.MatchString(job.Message) {
			t.Fatalf("job message %q is not the Downloaded-in line", job.Message)
		}
	})

	// PS C:\> Get-ContainerImage
	// Name                    Publisher       Version         IsOSImage
	// NanoServer              CN=Microsoft    10.0.10586.0    True
	var nano map[string]json.RawMessage
	t.Run("Get-ContainerImage", func(t *testing.T) {
		code, b := psReplay(t, p, routes, "GetImages", nil, map[string]any{"name": "", "publisher": "", "requiredVersion": ""}, nil)
		if code != http.StatusOK {
			t.Fatalf("images: %d %s", code, b)
		}
		for _, img := range psObjects(t, b, "images") {
			if psField[string](t, img, "name") == "NanoServer" {
				nano = img
			}
		}
		if nano == nil {
			t.Fatalf("Get-ContainerImage does not list NanoServer: %s", b)
		}
		psCheckDisplayed(t, nano, "ContainerProvider.ContainerImage")
		keys := psConverterKeys(t, "ContainerImage")
		if got := psField[string](t, nano, keys["Publisher"]); got != "CN=Microsoft" {
			t.Fatalf("Publisher = %q, want CN=Microsoft", got)
		}
		if got := psField[string](t, nano, keys["Version"]); got != "10.0.10586.0" {
			t.Fatalf("Version = %q, want 10.0.10586.0", got)
		}
		if !psField[bool](t, nano, keys["IsOSImage"]) {
			t.Fatalf("IsOSImage is not true: %v", nano)
		}
	})

	// PS C:\> Get-ContainerImage -Name NanoServer | Remove-ContainerImage -Force
	t.Run("Remove-ContainerImage", func(t *testing.T) {
		if nano == nil {
			t.Skip("Get-ContainerImage found no NanoServer to pipe")
		}
		code, b := psReplay(t, p, routes, "GetImages", nil, map[string]any{"name": "NanoServer", "publisher": "", "requiredVersion": ""}, nil)
		if code != http.StatusOK {
			t.Fatalf("images -Name NanoServer: %d %s", code, b)
		}
		piped := psObjects(t, b, "images")
		if len(piped) != 1 {
			t.Fatalf("Get-ContainerImage -Name NanoServer: want one image: %s", b)
		}
		// Remove-ContainerImage -Image sends the Digest property as id.
		id := psField[string](t, piped[0], psConverterKeys(t, "ContainerImage")["Digest"])
		if id == "" {
			t.Fatalf("the piped image has no digest: %s", b)
		}
		code, b = psReplay(t, p, routes, "RemoveImages", nil, map[string]any{"id": id}, nil)
		if code != http.StatusOK {
			t.Fatalf("remove: %d %s", code, b)
		}
		var removed api.RemoveResult
		if err := json.Unmarshal(b, &removed); err != nil {
			t.Fatalf("remove answer %s: %v", b, err)
		}
		if findImage(removed.Removed, "NanoServer", "10.0.10586.0") == nil {
			t.Fatalf("remove did not remove NanoServer: %s", b)
		}
		if img := findImage(p.images(t), "NanoServer", ""); img != nil {
			t.Fatalf("NanoServer %s is still installed", img.Version)
		}
	})
}

// TestPowerShellRemoveReplay replays the requests of
// `Remove-ContainerImage -Name *` as the module sends them: the plan
// (force and whatIf, which removes nothing), then, for the images the
// user confirmed, one removal by their digests, parent and child together.
func TestPowerShellRemoveReplay(t *testing.T) {
	routes := map[string]psRoute{}
	for _, r := range readRouteTable(t) {
		routes[r.Name] = r
	}
	cat := startCatalogd(t, true)
	p := startProviderd(t, cat.URL(""), "")
	mustCimage(t, p, "install", "microsoft/iis")

	code, b := psReplay(t, p, routes, "RemoveImages", nil, map[string]any{"name": "*", "force": true, "whatIf": true}, nil)
	var plan api.RemoveResult
	if err := json.Unmarshal(b, &plan); code != http.StatusOK || err != nil || !plan.WhatIf || len(plan.Removed) != 2 {
		t.Fatalf("the plan: %d %s", code, b)
	}
	if imgs := p.images(t); len(imgs) != 2 {
		t.Fatalf("the plan removed images: %s", describe(imgs))
	}
	var digests []string
	for _, img := range plan.Removed {
		digests = append(digests, img.Digest)
	}
	code, b = psReplay(t, p, routes, "RemoveImages", nil, map[string]any{"id": strings.Join(digests, ",")}, nil)
	var removed api.RemoveResult
	if err := json.Unmarshal(b, &removed); code != http.StatusOK || err != nil || len(removed.Removed) != 2 {
		t.Fatalf("the removal of the confirmed images: %d %s", code, b)
	}
	if imgs := p.images(t); len(imgs) != 0 {
		t.Fatalf("images left: %s", describe(imgs))
	}
}
