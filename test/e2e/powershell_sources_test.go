package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/containerprovider/containerprovider/api"
)

// The checks of this file read the PowerShell module as text, as
// TestPowerShellRouteTable does: no PowerShell runs here, so each rule the
// module holds as data (routes, states, error categories, exports) is read
// back and checked against providerd and the cimage CLI.

var (
	psExportList    = regexp.MustCompile(`(?s)Export-ModuleMember -Function @\((.*?)\)`)
	psManifestList  = regexp.MustCompile(`(?s)FunctionsToExport\s*=\s*@\((.*?)\)`)
	psRouteUse      = regexp.MustCompile(`-Route (\w+)|\bRoute = '(\w+)'`)
	psCategoryLine  = regexp.MustCompile(`(?m)^\s*(\w+)\s*=\s*\[System\.Management\.Automation\.ErrorCategory\]::(\w+)\s*$`)
	psStateTable    = regexp.MustCompile(`(?s)\$script:SourceStates\s*=\s*@\((.*?)\n\)`)
	psStateLine     = regexp.MustCompile(`^\s*@\{\s*State\s*=\s*'(\w+)'((?:\s*;\s*\w+\s*=\s*\$(?:true|false))*)\s*\}\s*$`)
	psStateCond     = regexp.MustCompile(`(\w+)\s*=\s*\$(true|false)`)
	psStateFact     = regexp.MustCompile(`(?m)^\s*(\w+)\s*=.*\bGet-JsonValue \$Status '(\w+)'`)
	psErrorCodeUsed = regexp.MustCompile(`New-ContainerProviderError -Code (\w+)`)
)

// psApprovedVerbs are PowerShell's approved verbs (Get-Verb).
var psApprovedVerbs = strings.Fields(`
	Add Clear Close Copy Enter Exit Find Format Get Hide Join Lock Move New Open Optimize Pop Push
	Redo Remove Rename Reset Resize Search Select Set Show Skip Split Step Switch Undo Unlock Watch
	Connect Disconnect Read Receive Send Write
	Backup Checkpoint Compare Compress Convert ConvertFrom ConvertTo Dismount Edit Expand Export
	Group Import Initialize Limit Merge Mount Out Publish Restore Save Sync Unpublish Update
	Debug Measure Ping Repair Resolve Test Trace
	Approve Assert Build Complete Confirm Deny Deploy Disable Enable Install Invoke Register
	Request Restart Resume Start Stop Submit Suspend Uninstall Unregister Wait
	Block Grant Protect Revoke Unblock Unprotect Use`)

// psList returns the quoted strings of the first group of re in src.
func psList(t *testing.T, re *regexp.Regexp, src, what string) []string {
	t.Helper()
	m := re.FindStringSubmatch(src)
	if m == nil {
		t.Fatalf("no %s", what)
	}
	var out []string
	for _, q := range psQuoted.FindAllStringSubmatch(m[1], -1) {
		out = append(out, q[1])
	}
	sort.Strings(out)
	return out
}

// psErrorCategories reads $script:ErrorCategories: envelope code to
// ErrorCategory.
func psErrorCategories(t *testing.T) map[string]string {
	t.Helper()
	src := string(psModuleFile(t, psAPIFile))
	start := strings.Index(src, "$script:ErrorCategories = @{")
	if start < 0 {
		t.Fatal(psAPIFile + " has no $script:ErrorCategories table")
	}
	table := src[start:]
	table = table[:strings.Index(table, "\n}")]
	out := map[string]string{}
	for _, m := range psCategoryLine.FindAllStringSubmatch(table, -1) {
		out[m[1]] = m[2]
	}
	if len(out) == 0 {
		t.Fatal("$script:ErrorCategories is empty")
	}
	return out
}

// psStateRule is a line of $script:SourceStates: State holds when every
// condition holds.
type psStateRule struct {
	State      string
	Conditions map[string]bool
}

// readSourceStates reads $script:SourceStates, and the facts that
// Get-SourceState tests, each with the status field it comes from. Every
// non-blank line of the table must be a rule line.
func readSourceStates(t *testing.T) ([]psStateRule, map[string]string) {
	t.Helper()
	m := psStateTable.FindStringSubmatch(string(psModuleFile(t, psAPIFile)))
	if m == nil {
		t.Fatal(psAPIFile + " has no $script:SourceStates = @( ... ) table")
	}
	var rules []psStateRule
	for _, line := range strings.Split(m[1], "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		lm := psStateLine.FindStringSubmatch(line)
		if lm == nil {
			t.Fatalf("source state line not understood: %q", line)
		}
		r := psStateRule{State: lm[1], Conditions: map[string]bool{}}
		for _, c := range psStateCond.FindAllStringSubmatch(lm[2], -1) {
			r.Conditions[c[1]] = c[2] == "true"
		}
		rules = append(rules, r)
	}
	facts := map[string]string{}
	for _, f := range psStateFact.FindAllStringSubmatch(psFunctionBody(t, psAPIFile, "Get-SourceState"), -1) {
		facts[f[1]] = f[2]
	}
	for _, r := range rules {
		for c := range r.Conditions {
			if _, ok := facts[c]; !ok {
				t.Fatalf("state %s tests %s, which Get-SourceState does not read from the status (it reads %v)", r.State, c, facts)
			}
		}
	}
	return rules, facts
}

// psSourceState is Get-SourceState: the State of a raw status object (nil:
// no status), from the table. A fact is a boolean field, or whether a
// string field is set, as [bool] and IsNullOrEmpty read them.
func psSourceState(t *testing.T, rules []psStateRule, facts map[string]string, status map[string]json.RawMessage) string {
	t.Helper()
	if status == nil {
		return ""
	}
	have := map[string]bool{}
	for fact, key := range facts {
		var v any
		if raw, ok := status[key]; ok {
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatalf("status field %s: %v", key, err)
			}
		}
		switch v := v.(type) {
		case bool:
			have[fact] = v
		case string:
			have[fact] = v != ""
		}
	}
	for _, r := range rules {
		match := true
		for c, want := range r.Conditions {
			if have[c] != want {
				match = false
			}
		}
		if match {
			return r.State
		}
	}
	return ""
}

// cliSourceState is the rule of cimage source list (cmd/cimage sourceState).
func cliSourceState(st api.SourceStatus) string {
	switch {
	case !st.Complete && st.Syncing:
		return "syncing"
	case !st.Complete:
		return "incomplete"
	case st.LastError != "":
		return "stale"
	}
	return "complete"
}

// rawObject marshals v and decodes it as a raw JSON object.
func rawObject(t *testing.T, v any) map[string]json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// jsonName is the JSON name of a field of a struct type.
func jsonName(t *testing.T, v any, field string) string {
	t.Helper()
	f, ok := reflect.TypeOf(v).FieldByName(field)
	if !ok {
		t.Fatalf("%T has no field %s", v, field)
	}
	return strings.Split(f.Tag.Get("json"), ",")[0]
}

// TestPowerShellModuleContract checks, without PowerShell, what the module
// declares: its exports, the routes its calls name, the state rule of a
// source, the warnings of a find and the error of a failed refresh.
func TestPowerShellModuleContract(t *testing.T) {
	psm1 := string(psModuleFile(t, "ContainerImage.psm1"))
	provider := string(psModuleFile(t, "ContainerImageProvider.psm1"))
	shared := string(psModuleFile(t, psAPIFile))

	// FunctionsToExport and Export-ModuleMember name the same functions,
	// each defined, with an approved verb and comment-based help with an
	// example.
	t.Run("exports", func(t *testing.T) {
		exported := psList(t, psExportList, psm1, "Export-ModuleMember -Function @( ... ) in ContainerImage.psm1")
		manifest := psList(t, psManifestList, string(psModuleFile(t, "ContainerImage.psd1")), "FunctionsToExport in ContainerImage.psd1")
		if !slices.Equal(exported, manifest) {
			t.Fatalf("Export-ModuleMember exports %v, FunctionsToExport lists %v", exported, manifest)
		}
		for _, f := range exported {
			verb, _, _ := strings.Cut(f, "-")
			if !slices.Contains(psApprovedVerbs, verb) {
				t.Errorf("%s: %s is not an approved verb", f, verb)
			}
			body := psFunctionBody(t, "ContainerImage.psm1", f)
			help, _, ok := strings.Cut(body, "#>")
			if !ok || !strings.Contains(help, "<#") || !strings.Contains(help, ".SYNOPSIS") || !strings.Contains(help, ".EXAMPLE") {
				t.Errorf("%s has no comment-based help with .SYNOPSIS and .EXAMPLE", f)
			}
		}
		if !slices.Contains(exported, "Update-ContainerImageSource") {
			t.Fatalf("Update-ContainerImageSource is not exported: %v", exported)
		}
	})

	// Every route that a call names is a line of the table (which
	// TestPowerShellRouteTable checks against providerd's router).
	t.Run("routes used", func(t *testing.T) {
		declared := map[string]bool{}
		for _, r := range readRouteTable(t) {
			declared[r.Name] = false
		}
		for file, src := range map[string]string{"ContainerImage.psm1": psm1, "ContainerImageProvider.psm1": provider, psAPIFile: shared} {
			for _, m := range psRouteUse.FindAllStringSubmatch(src, -1) {
				name := m[1] + m[2]
				if _, ok := declared[name]; !ok {
					t.Errorf("%s calls route %s, which the route table does not declare", file, name)
				}
				declared[name] = true
			}
		}
		if !declared["RefreshSource"] {
			t.Error("no call of route RefreshSource")
		}
	})

	// The module's State of a source is the CLI's, for every status.
	t.Run("source states", func(t *testing.T) {
		rules, facts := readSourceStates(t)
		for _, complete := range []bool{false, true} {
			for _, syncing := range []bool{false, true} {
				for _, lastError := range []string{"", "GET /v2/_catalog: 503 Service Unavailable"} {
					st := api.SourceStatus{Complete: complete, Syncing: syncing, LastError: lastError}
					got := psSourceState(t, rules, facts, rawObject(t, st))
					if want := cliSourceState(st); got != want {
						t.Errorf("complete=%v syncing=%v lastError=%q: the module says %q, cimage %q", complete, syncing, lastError, got, want)
					}
				}
			}
		}
		if got := psSourceState(t, rules, facts, nil); got != "" {
			t.Errorf("no status: the module says %q, want empty", got)
		}
		if keys := psConverterKeys(t, "ContainerImageSource"); keys["State"] != jsonName(t, api.Source{}, "Status") ||
			keys["Entries"] != "status/"+jsonName(t, api.SourceStatus{}, "Entries") ||
			keys["LastSync"] != "status/"+jsonName(t, api.SourceStatus{}, "LastSync") ||
			keys["LastError"] != "status/"+jsonName(t, api.SourceStatus{}, "LastError") {
			t.Fatalf("the view ContainerImageSource reads %v", keys)
		}
	})

	// Find-ContainerImage and the provider's Find-Package read the warnings
	// of the answer and write them to the warning stream before the images.
	t.Run("find warnings", func(t *testing.T) {
		key := "'" + jsonName(t, api.FindResponse{}, "Warnings") + "'"
		for _, c := range []struct{ file, function, write string }{
			{"ContainerImage.psm1", "Find-ContainerImage", "$PSCmdlet.WriteWarning("},
			{"ContainerImageProvider.psm1", "Find-Package", "Write-Warning "},
		} {
			body := psFunctionBody(t, c.file, c.function)
			call := strings.Index(body, "FindImages")
			read := strings.Index(body, key)
			write := strings.Index(body, c.write)
			images := strings.Index(body, "Get-JsonValue $res 'images'")
			if call < 0 || read < call || write < read || images < write {
				t.Errorf("%s: %s does not read %s of the FindImages answer and call %s before the images (at %d, %d, %d, %d)",
					c.file, c.function, key, c.write, call, read, write, images)
			}
		}
	})

	// Update-ContainerImageSource refreshes each source and, when its
	// status has a lastError, writes a ResourceUnavailable error.
	t.Run("refresh error", func(t *testing.T) {
		body := psFunctionBody(t, "ContainerImage.psm1", "Update-ContainerImageSource")
		if !strings.Contains(body, "Route = 'RefreshSource'; PathValues = @{ name = $n }") {
			t.Fatal("Update-ContainerImageSource does not call RefreshSource with the name")
		}
		if !strings.Contains(body, "Route = 'RefreshSource'; PathValues = @{ name = $n }; Target = $n } -View ContainerImageSource") {
			t.Fatal("Update-ContainerImageSource does not output the refreshed source as a ContainerImageSource")
		}
		test := strings.Index(body, "$source.LastError)")
		m := psErrorCodeUsed.FindStringSubmatchIndex(body)
		if test < 0 || m == nil || m[0] < test {
			t.Fatal("Update-ContainerImageSource writes no New-ContainerProviderError after testing LastError")
		}
		code := body[m[2]:m[3]]
		if got := psErrorCategories(t)[code]; got != "ResourceUnavailable" {
			t.Fatalf("Update-ContainerImageSource writes code %s, category %q, want ResourceUnavailable", code, got)
		}
	})
}

// flakySource is a reverse proxy to a registry that answers 503 to every
// request while it is down.
type flakySource struct {
	*httptest.Server
	down atomic.Bool
}

func newFlakySource(t *testing.T, target string) *flakySource {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	f := &flakySource{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// cimageSourceStates reads the State column of `cimage source list`.
func cimageSourceStates(t *testing.T, p *providerd) map[string]string {
	t.Helper()
	out := mustCimage(t, p, "source", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "Name") {
		t.Fatalf("cimage source list:\n%s", out)
	}
	states := map[string]string{}
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) < 3 {
			t.Fatalf("cimage source list line %q", l)
		}
		states[f[0]] = f[2]
	}
	return states
}

// TestPowerShellSourceReplay replays, against real catalogd and providerd,
// the requests of Register-, Get- and Update-ContainerImageSource and of
// Find-ContainerImage while a source is down: the State the module derives
// is the one cimage source list shows, a failed sync is reported, and the
// find answer carries the warning that the module writes.
func TestPowerShellSourceReplay(t *testing.T) {
	routes := map[string]psRoute{}
	for _, r := range readRouteTable(t) {
		routes[r.Name] = r
	}
	rules, facts := readSourceStates(t)
	cat := startCatalogd(t, true)
	flaky := newFlakySource(t, cat.URL(""))
	p := startProviderd(t, cat.URL(""), "")
	keys := psConverterKeys(t, "ContainerImageSource")

	// state is the State that the view ContainerImageSource gives obj.
	state := func(t *testing.T, obj map[string]json.RawMessage) string {
		t.Helper()
		status, _ := psLookup(t, obj, keys["State"])
		var st map[string]json.RawMessage
		if status != nil {
			if err := json.Unmarshal(status, &st); err != nil {
				t.Fatalf("status %s: %v", status, err)
			}
		}
		return psSourceState(t, rules, facts, st)
	}
	// sameAsCLI checks the module's State of each source against cimage's.
	sameAsCLI := func(t *testing.T, sources []map[string]json.RawMessage) {
		t.Helper()
		cli := cimageSourceStates(t, p)
		for _, s := range sources {
			name := psField[string](t, s, keys["Name"])
			if got, want := state(t, s), cli[name]; got != want {
				t.Fatalf("source %s: the module's State is %q, cimage source list says %q", name, got, want)
			}
		}
	}

	// PS C:\> Register-ContainerImageSource -Name flaky -Location $location
	t.Run("Register-ContainerImageSource", func(t *testing.T) {
		req := map[string]any{"name": "flaky", "location": flaky.URL, "insecure": false}
		code, b := psReplay(t, p, routes, "AddSource", nil, nil, req)
		if code != http.StatusCreated {
			t.Fatalf("add source: %d %s", code, b)
		}
	})

	// PS C:\> Update-ContainerImageSource
	// (GET /v1/sources, then a refresh of each source)
	t.Run("Update-ContainerImageSource", func(t *testing.T) {
		code, b := psReplay(t, p, routes, "GetSources", nil, nil, nil)
		if code != http.StatusOK {
			t.Fatalf("sources: %d %s", code, b)
		}
		var refreshed []map[string]json.RawMessage
		for _, s := range psObjects(t, b, "sources") {
			name := psField[string](t, s, "name")
			code, b := psReplay(t, p, routes, "RefreshSource", map[string]string{"name": name}, nil, nil)
			if code != http.StatusOK {
				t.Fatalf("refresh %s: %d %s", name, code, b)
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(b, &obj); err != nil {
				t.Fatalf("refresh %s: %v: %s", name, err, b)
			}
			psCheckDisplayed(t, obj, "ContainerProvider.ContainerImageSource")
			if got := state(t, obj); got != "complete" {
				t.Fatalf("refresh %s: State %q, want complete: %s", name, got, b)
			}
			if e := psField[string](t, obj, keys["LastError"]); e != "" {
				t.Fatalf("refresh %s: LastError %q", name, e)
			}
			if n := psField[int](t, obj, keys["Entries"]); n == 0 {
				t.Fatalf("refresh %s: no entries: %s", name, b)
			}
			refreshed = append(refreshed, obj)
		}
		if len(refreshed) != 2 {
			t.Fatalf("refreshed %d sources, want catalog and flaky", len(refreshed))
		}
		sameAsCLI(t, refreshed)
	})

	// PS C:\> Update-ContainerImageSource -Name flaky
	// (the source is down: the source is output, stale, and an error)
	t.Run("Update-ContainerImageSource down", func(t *testing.T) {
		flaky.down.Store(true)
		code, b := psReplay(t, p, routes, "RefreshSource", map[string]string{"name": "flaky"}, nil, nil)
		if code != http.StatusOK {
			t.Fatalf("refresh flaky: %d %s", code, b)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(b, &obj); err != nil {
			t.Fatalf("refresh flaky: %v: %s", err, b)
		}
		if e := psField[string](t, obj, keys["LastError"]); !strings.Contains(e, "503") {
			t.Fatalf("refresh of a source that answers 503: LastError %q: %s", e, b)
		}
		if got := state(t, obj); got != "stale" {
			t.Fatalf("refresh of a source that answers 503: State %q, want stale: %s", got, b)
		}
	})

	// PS C:\> Get-ContainerImageSource
	t.Run("Get-ContainerImageSource", func(t *testing.T) {
		code, b := psReplay(t, p, routes, "GetSources", nil, nil, nil)
		if code != http.StatusOK {
			t.Fatalf("sources: %d %s", code, b)
		}
		sources := psObjects(t, b, "sources")
		states := map[string]string{}
		for _, s := range sources {
			psCheckDisplayed(t, s, "ContainerProvider.ContainerImageSource")
			states[psField[string](t, s, keys["Name"])] = state(t, s)
		}
		if states["catalog"] != "complete" || states["flaky"] != "stale" {
			t.Fatalf("states %v, want catalog complete and flaky stale: %s", states, b)
		}
		sameAsCLI(t, sources)
	})

	// PS C:\> Find-ContainerImage
	// WARNING: source flaky: the index is stale: ...
	t.Run("Find-ContainerImage warnings", func(t *testing.T) {
		code, b := psReplay(t, p, routes, "FindImages", nil, map[string]any{"name": "", "source": ""}, nil)
		if code != http.StatusOK {
			t.Fatalf("find: %d %s", code, b)
		}
		var res api.FindResponse
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatalf("find answer %s: %v", b, err)
		}
		if len(res.Warnings) != 1 || !strings.HasPrefix(res.Warnings[0], "source flaky: the index is stale") {
			t.Fatalf("find with a stale source: warnings %q, want one naming flaky", res.Warnings)
		}
		if len(res.Images) == 0 {
			t.Fatalf("find with a stale source answers no image: %s", b)
		}
		// With every source current again, no warning.
		flaky.down.Store(false)
		code, b = psReplay(t, p, routes, "RefreshSource", map[string]string{"name": "flaky"}, nil, nil)
		if code != http.StatusOK {
			t.Fatalf("refresh flaky: %d %s", code, b)
		}
		code, b = psReplay(t, p, routes, "FindImages", nil, map[string]any{"name": "", "source": ""}, nil)
		if code != http.StatusOK {
			t.Fatalf("find: %d %s", code, b)
		}
		res = api.FindResponse{}
		if err := json.Unmarshal(b, &res); err != nil || len(res.Warnings) != 0 {
			t.Fatalf("find with every source current: warnings %q (%v)", res.Warnings, err)
		}
	})

	// PS C:\> Update-ContainerImageSource -Name no-such-source
	// (an ObjectNotFound error from the envelope)
	t.Run("Update-ContainerImageSource unknown", func(t *testing.T) {
		code, b := psReplay(t, p, routes, "RefreshSource", map[string]string{"name": "no-such-source"}, nil, nil)
		var env api.ErrorResponse
		if err := json.Unmarshal(b, &env); err != nil || code != http.StatusNotFound || env.Error.Code != "NotFound" {
			t.Fatalf("refresh of an unknown source: %d %s (%v), want 404 NotFound", code, b, err)
		}
		if got := psErrorCategories(t)[env.Error.Code]; got != "ObjectNotFound" {
			t.Fatalf("the module maps %s to %q, want ObjectNotFound", env.Error.Code, got)
		}
	})
}
