package e2e

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api"
)

// The checks of this file read the module's registration of a source's
// registry mirrors as text, as the rest of the PowerShell tests do, and
// replay the body it builds.

// psMirrorContract is the mirror of a source in the API: the body that the
// module sends must decode into it with no unknown field.
type psMirrorContract = api.SourceMirror

// psMirrorCapabilities are the capabilities a mirror may have.
var psMirrorCapabilities = []string{api.MirrorPull, api.MirrorResolve}

// psMirrorsKey is the JSON name of api.Source's mirrors.
const psMirrorsKey = "mirrors"

var (
	psMirrorLiteral    = regexp.MustCompile(`\$mirror = \[ordered\]@\{ (\w+) = \$text \}`)
	psMirrorGuard      = regexp.MustCompile(`(?m)^\s*if \((\$\w+(?:\.Count -gt 0)?)\) \{\n((?:\s*\$mirror\['\w+'\] = [^\n]+\n)+)\s*\}`)
	psMirrorAssignment = regexp.MustCompile(`\$mirror\['(\w+)'\] = ([^\n]+)`)
	psMirrorRequestUse = regexp.MustCompile(`\$req\['(\w+)'\] = New-SourceMirrorRequest ([^\n]+)`)
	psCapabilityTable  = regexp.MustCompile(`\$script:MirrorCapabilities = @\(([^)]*)\)`)
	psCapabilitySet    = regexp.MustCompile(`\[ValidateSet\(([^)]*)\)\]\s*\[string\[\]\]\$MirrorCapability\b`)
	psOptionDecl       = regexp.MustCompile(`New-DynamicOption -Category \$Category -Name '(\w+)' -ExpectedType (\w+)[^\n]*`)
	psOptionRead       = regexp.MustCompile(`(?:Get-RequestOption|Get-RequestList|Test-RequestSwitch) '(\w+)'`)
	psParamName        = regexp.MustCompile(`(?m)^\s*(?:\[[^\n]*\])?\$(\w+)\s*,?\s*$`)
)

// psQuotedList returns the quoted strings of list.
func psQuotedList(list string) []string {
	var out []string
	for _, q := range psQuoted.FindAllStringSubmatch(list, -1) {
		out = append(out, q[1])
	}
	return out
}

// jsonFields are the JSON names of the fields of struct type typ, sorted.
func jsonFields(typ reflect.Type) []string {
	var out []string
	for i := 0; i < typ.NumField(); i++ {
		if name := strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]; name != "" && name != "-" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// psMirrorInput is what Register-ContainerImageSource's mirror parameters
// (or the provider's options) hold.
type psMirrorInput struct {
	Locations          []string
	Username, Password string // -MirrorCredential; empty: none
	Capabilities       []string
	Insecure           bool
	Namespace          string // -MirrorNamespace
}

// psMirrorRule is one key that New-SourceMirrorRequest sets on a mirror
// entry: always (Guard empty) or when its guard holds.
type psMirrorRule struct {
	Guard, Key, Expr string
}

// readMirrorRequest reads how New-SourceMirrorRequest builds an entry: the
// key of the literal that holds the location, and each key set after it
// with its guard and expression. Every "$mirror[...] =" line must be read.
func readMirrorRequest(t *testing.T) (string, []psMirrorRule) {
	t.Helper()
	body := psFunctionBody(t, psAPIFile, "New-SourceMirrorRequest")
	lit := psMirrorLiteral.FindStringSubmatch(body)
	if lit == nil {
		t.Fatal("New-SourceMirrorRequest makes no $mirror = [ordered]@{ KEY = $text } entry")
	}
	var rules []psMirrorRule
	for _, g := range psMirrorGuard.FindAllStringSubmatch(body, -1) {
		for _, a := range psMirrorAssignment.FindAllStringSubmatch(g[2], -1) {
			rules = append(rules, psMirrorRule{Guard: g[1], Key: a[1], Expr: strings.TrimSpace(a[2])})
		}
	}
	if n := len(psMirrorAssignment.FindAllString(body, -1)); n != len(rules) {
		t.Fatalf("New-SourceMirrorRequest sets %d mirror keys, %d of them under a guard this test reads", n, len(rules))
	}
	return lit[1], rules
}

// psMirrorBody is the mirrors value that New-SourceMirrorRequest returns
// for in, replayed from the module's text: one entry per location, each key
// set when its guard holds, to the value its expression names.
func psMirrorBody(t *testing.T, in psMirrorInput) []map[string]any {
	t.Helper()
	locationKey, rules := readMirrorRequest(t)
	guards := map[string]bool{
		"$Insecure":         in.Insecure,
		"$Credential":       in.Username != "" || in.Password != "",
		"$caps.Count -gt 0": len(in.Capabilities) > 0,
		"$Namespace":        in.Namespace != "",
	}
	values := map[string]any{
		"$true":                true,
		"$Credential.UserName": in.Username,
		"$Credential.GetNetworkCredential().Password": in.Password,
		"$caps.ToArray()": in.Capabilities,
		"$Namespace":      in.Namespace,
	}
	var out []map[string]any
	for _, l := range in.Locations {
		m := map[string]any{locationKey: l}
		for _, r := range rules {
			on, ok := guards[r.Guard]
			if !ok {
				t.Fatalf("New-SourceMirrorRequest sets %s under guard %s, which this test does not know", r.Key, r.Guard)
			}
			v, ok := values[r.Expr]
			if !ok {
				t.Fatalf("New-SourceMirrorRequest sets %s to %s, which this test does not know", r.Key, r.Expr)
			}
			if on {
				m[r.Key] = v
			}
		}
		out = append(out, m)
	}
	return out
}

// TestPowerShellMirrorContract checks, without PowerShell, that the module
// registers a source's mirrors as the API takes them: the body's field
// names, the capability names, the parameters and options that feed it, the
// check before any request, the help, and the display of the mirrors.
func TestPowerShellMirrorContract(t *testing.T) {
	shared := string(psModuleFile(t, psAPIFile))
	contract := jsonFields(reflect.TypeOf(psMirrorContract{}))

	// The API's JSON name of the mirrors is the one the module sends.
	if f, ok := reflect.TypeOf(api.Source{}).FieldByName("Mirrors"); !ok || strings.Split(f.Tag.Get("json"), ",")[0] != psMirrorsKey {
		t.Fatalf("api.Source's mirrors are not the JSON field %q", psMirrorsKey)
	}

	// The body of a source with mirrors decodes into the contract with no
	// unknown field, and every field but none is sent when given.
	t.Run("body", func(t *testing.T) {
		in := psMirrorInput{
			Locations:    []string{"http://127.0.0.1:5001", "https://cache.example:5000/v2mirror"},
			Username:     "cacheuser",
			Password:     "s3cret",
			Capabilities: []string{"pull"},
			Insecure:     true,
			Namespace:    "proxy-project",
		}
		b, err := json.Marshal(map[string]any{psMirrorsKey: psMirrorBody(t, in)})
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Mirrors []psMirrorContract `json:"mirrors"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("the module's mirrors %s: %v", b, err)
		}
		want := []psMirrorContract{
			{Location: in.Locations[0], Insecure: true, Username: "cacheuser", Password: "s3cret", Namespace: "proxy-project", Capabilities: []string{"pull"}},
			{Location: in.Locations[1], Insecure: true, Username: "cacheuser", Password: "s3cret", Namespace: "proxy-project", Capabilities: []string{"pull"}},
		}
		if !reflect.DeepEqual(got.Mirrors, want) {
			t.Fatalf("the module sends %s, want %+v", b, want)
		}
		// Without settings, only the location: the mirror has both
		// capabilities, and nothing false or empty is sent.
		bare := psMirrorBody(t, psMirrorInput{Locations: []string{"http://127.0.0.1:5001"}})
		if len(bare) != 1 || len(bare[0]) != 1 {
			t.Fatalf("a mirror without settings is sent as %v, want its location alone", bare)
		}
		// ValidateSet takes 'PULL' too: the module sends lower case.
		if !strings.Contains(psFunctionBody(t, psAPIFile, "New-SourceMirrorRequest"), "$c.Trim().ToLowerInvariant()") {
			t.Fatal("New-SourceMirrorRequest does not send the capabilities in lower case")
		}
	})

	// The capability names are the API's in the module's table, in the
	// ValidateSet of -MirrorCapability and in the provider's option.
	t.Run("capabilities", func(t *testing.T) {
		for what, m := range map[string][]string{
			"$script:MirrorCapabilities":      psCapabilityTable.FindStringSubmatch(shared),
			"-MirrorCapability's ValidateSet": psCapabilitySet.FindStringSubmatch(psFunctionBody(t, "ContainerImage.psm1", "Register-ContainerImageSource")),
		} {
			if m == nil {
				t.Fatalf("the module has no %s", what)
			}
			if got := psQuotedList(m[1]); !slices.Equal(got, psMirrorCapabilities) {
				t.Errorf("%s is %v, want %v", what, got, psMirrorCapabilities)
			}
		}
		var permitted []string
		for _, m := range psOptionDecl.FindAllStringSubmatch(psFunctionBody(t, "ContainerImageProvider.psm1", "Get-DynamicOptions"), -1) {
			if m[1] == "MirrorCapability" {
				_, list, ok := strings.Cut(m[0], "-PermittedValues @(")
				if !ok {
					t.Fatalf("the MirrorCapability option has no PermittedValues: %s", m[0])
				}
				permitted = psQuotedList(list)
			}
		}
		if !slices.Equal(permitted, psMirrorCapabilities) {
			t.Errorf("the provider's MirrorCapability option permits %v, want %v", permitted, psMirrorCapabilities)
		}
	})

	// Register-ContainerImageSource and the provider's Add-PackageSource put
	// the mirrors of New-SourceMirrorRequest under the API's key, from their
	// parameters or options, and send nothing when it fails.
	t.Run("callers", func(t *testing.T) {
		for _, c := range []struct {
			file, function string
			args           []string
		}{
			{"ContainerImage.psm1", "Register-ContainerImageSource", []string{"-Location $Mirror", "-Credential $MirrorCredential", "-Capability $MirrorCapability", "-Insecure ([bool]$MirrorInsecure)"}},
			{"ContainerImageProvider.psm1", "Add-PackageSource", []string{"-Location $mirror", "-Capability $capability", "-Insecure $mirrorInsecure"}},
		} {
			body := psFunctionBody(t, c.file, c.function)
			m := psMirrorRequestUse.FindStringSubmatchIndex(body)
			if m == nil {
				t.Errorf("%s: %s does not set $req[...] from New-SourceMirrorRequest", c.file, c.function)
				continue
			}
			if key := body[m[2]:m[3]]; key != psMirrorsKey {
				t.Errorf("%s: %s sends the mirrors as %q, want %q", c.file, c.function, key, psMirrorsKey)
			}
			call := body[m[4]:m[5]]
			for _, a := range c.args {
				if !strings.Contains(call, a) {
					t.Errorf("%s: %s calls New-SourceMirrorRequest %s, without %s", c.file, c.function, call, a)
				}
			}
			// The failure returns before the one request.
			rest := body[m[1]:]
			ret := strings.Index(rest, "return")
			send := strings.Index(rest, "Route = 'AddSource'")
			if send < 0 {
				send = strings.Index(rest, "-Route AddSource")
			}
			if catch := strings.Index(rest, "catch {"); catch < 0 || ret < catch || send < ret {
				t.Errorf("%s: %s does not return in the catch of New-SourceMirrorRequest before it calls AddSource", c.file, c.function)
			}
		}
	})

	// Every option that Add-PackageSource reads is a dynamic option of
	// category Source, Mirror a StringArray.
	t.Run("provider options", func(t *testing.T) {
		dyn := psFunctionBody(t, "ContainerImageProvider.psm1", "Get-DynamicOptions")
		start := strings.Index(dyn, "Source {")
		if start < 0 {
			t.Fatal("Get-DynamicOptions declares no option of category Source")
		}
		block := dyn[start:]
		if end := strings.Index(block, "\n        }"); end >= 0 {
			block = block[:end]
		}
		declared := map[string]string{}
		for _, m := range psOptionDecl.FindAllStringSubmatch(block, -1) {
			declared[m[1]] = m[2]
		}
		read := psOptionRead.FindAllStringSubmatch(psFunctionBody(t, "ContainerImageProvider.psm1", "Add-PackageSource"), -1)
		if len(read) == 0 {
			t.Fatal("Add-PackageSource reads no option")
		}
		for _, m := range read {
			if _, ok := declared[m[1]]; !ok {
				t.Errorf("Add-PackageSource reads option %s, which is no option of category Source (%v)", m[1], declared)
			}
		}
		if declared["Mirror"] != "StringArray" {
			t.Errorf("the Source option Mirror is %q, want StringArray", declared["Mirror"])
		}
	})

	// Register-ContainerImageSource documents each parameter and shows
	// -Mirror in an example.
	t.Run("help", func(t *testing.T) {
		body := psFunctionBody(t, "ContainerImage.psm1", "Register-ContainerImageSource")
		help, code, ok := strings.Cut(body, "#>")
		if !ok {
			t.Fatal("Register-ContainerImageSource has no comment-based help")
		}
		start := strings.Index(code, "param(")
		end := strings.Index(code, "\n    )")
		if start < 0 || end < start {
			t.Fatal("Register-ContainerImageSource has no param( ... ) block")
		}
		params := psParamName.FindAllStringSubmatch(code[start:end], -1)
		if len(params) < 5 {
			t.Fatalf("read %d parameters of Register-ContainerImageSource", len(params))
		}
		for _, p := range params {
			if !strings.Contains(help, ".PARAMETER "+p[1]+"\n") {
				t.Errorf("the help of Register-ContainerImageSource has no .PARAMETER %s", p[1])
			}
		}
		example := false
		for _, e := range strings.Split(help, ".EXAMPLE")[1:] {
			if strings.Contains(e, "Register-ContainerImageSource ") && strings.Contains(e, " -Mirror ") {
				example = true
			}
		}
		if !example {
			t.Error("no .EXAMPLE of Register-ContainerImageSource -Mirror")
		}
	})

	// The source object has Mirrors from the API's key, each mirror every
	// field the API returns (never a password), and the format file shows
	// them.
	t.Run("display", func(t *testing.T) {
		if v := psViews(t, "ContainerImageSource")["Mirrors"]; v.Path != psMirrorsKey || v.Kind != "mirrors" {
			t.Errorf("the view ContainerImageSource reads Mirrors from %+v, want %q as mirrors", v, psMirrorsKey)
		}
		var read []string
		for _, v := range psViews(t, "ContainerImageSourceMirror") {
			read = append(read, v.Path)
		}
		sort.Strings(read)
		returned := slices.DeleteFunc(slices.Clone(contract), func(s string) bool { return s == "password" })
		if !slices.Equal(read, returned) {
			t.Errorf("the view ContainerImageSourceMirror reads %v, want %v", read, returned)
		}
		var f struct {
			Views []struct {
				TypeNames []string `xml:"ViewSelectedBy>TypeName"`
				Labels    []string `xml:"ListControl>ListEntries>ListEntry>ListItems>ListItem>Label"`
				Scripts   []string `xml:"ListControl>ListEntries>ListEntry>ListItems>ListItem>ScriptBlock"`
			} `xml:"ViewDefinitions>View"`
		}
		if err := xml.Unmarshal(psModuleFile(t, "ContainerImage.format.ps1xml"), &f); err != nil {
			t.Fatalf("ContainerImage.format.ps1xml: %v", err)
		}
		listed := false
		for _, v := range f.Views {
			if slices.Contains(v.TypeNames, "ContainerProvider.ContainerImageSource") && slices.Contains(v.Labels, "Mirrors") {
				listed = slices.ContainsFunc(v.Scripts, func(s string) bool { return strings.Contains(s, "$_.Mirrors") })
			}
		}
		if !listed {
			t.Error("no list view of ContainerProvider.ContainerImageSource shows $_.Mirrors")
		}
		keys := psConverterKeys(t, "ContainerImageSourceMirror")
		for _, p := range psDisplayedProperties(t, "ContainerProvider.ContainerImageSourceMirror") {
			if _, ok := keys[p]; !ok {
				t.Errorf("the mirror view displays %s, which the view ContainerImageSourceMirror does not set from the JSON", p)
			}
		}
	})
}

// TestPowerShellMirrorReplay replays, against real catalogd and providerd,
// the request of Register-ContainerImageSource -Mirror with the body that
// the module builds, then Get-ContainerImageSource: the mirrors come back
// in order, with their settings and without their passwords.
func TestPowerShellMirrorReplay(t *testing.T) {
	routes := map[string]psRoute{}
	for _, r := range readRouteTable(t) {
		routes[r.Name] = r
	}
	cat := startCatalogd(t, true)
	mirror := newFlakySource(t, cat.URL(""))
	second := newFlakySource(t, cat.URL(""))
	p := startProviderd(t, cat.URL(""), "")

	// PS C:\> Register-ContainerImageSource -Name mirrored -Location $location `
	//     -Mirror $mirror, $second -MirrorCredential $cred -MirrorCapability pull
	in := psMirrorInput{
		Locations:    []string{mirror.URL, second.URL},
		Username:     "cacheuser",
		Password:     "s3cret",
		Capabilities: []string{"pull"},
	}
	req := map[string]any{"name": "mirrored", "location": cat.URL(""), "insecure": false, psMirrorsKey: psMirrorBody(t, in)}
	code, b := psReplay(t, p, routes, "AddSource", nil, nil, req)
	if code != http.StatusCreated {
		t.Fatalf("add source with mirrors: %d %s", code, b)
	}
	check := func(t *testing.T, what string, obj map[string]json.RawMessage) {
		t.Helper()
		if bytes.Contains(b, []byte("s3cret")) {
			t.Fatalf("%s returns a mirror's password: %s", what, b)
		}
		mirrors := psField[[]map[string]json.RawMessage](t, obj, psMirrorsKey)
		if len(mirrors) != len(in.Locations) {
			t.Fatalf("%s: %d mirrors, want %d: %s", what, len(mirrors), len(in.Locations), b)
		}
		keys := psConverterKeys(t, "ContainerImageSourceMirror")
		for i, m := range mirrors {
			if got := psField[string](t, m, keys["Location"]); got != in.Locations[i] {
				t.Errorf("%s: mirror %d is %q, want %q", what, i, got, in.Locations[i])
			}
			if got := psField[string](t, m, keys["Username"]); got != in.Username {
				t.Errorf("%s: mirror %d has username %q, want %q", what, i, got, in.Username)
			}
			if got := psField[[]string](t, m, "capabilities"); !slices.Equal(got, in.Capabilities) {
				t.Errorf("%s: mirror %d has capabilities %v, want %v", what, i, got, in.Capabilities)
			}
		}
	}
	var added map[string]json.RawMessage
	if err := json.Unmarshal(b, &added); err != nil {
		t.Fatalf("add answer %s: %v", b, err)
	}
	check(t, "POST /v1/sources", added)

	// PS C:\> Get-ContainerImageSource mirrored | Format-List
	code, b = psReplay(t, p, routes, "GetSources", nil, nil, nil)
	if code != http.StatusOK {
		t.Fatalf("sources: %d %s", code, b)
	}
	found := false
	for _, s := range psObjects(t, b, "sources") {
		if psField[string](t, s, "name") == "mirrored" {
			found = true
			check(t, "GET /v1/sources", s)
		}
	}
	if !found {
		t.Fatalf("GET /v1/sources does not list mirrored: %s", b)
	}
}
