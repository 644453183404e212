package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
)

// cimageStreams runs cimage against p's unix socket and returns its
// stdout, its stderr and its exit code apart.
func cimageStreams(t *testing.T, p *providerd, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	r := runCimage(p, args...)
	if r.err != nil {
		t.Fatalf("cimage %s: %v", r.args, r.err)
	}
	return r.stdout, r.stderr, r.code
}

// TestCmdletParameters: the reference's own spelling, -Name and -Version,
// installs; --version is --required-version; usage errors exit 2 before
// any request, and a name that matches nothing installed exits 3.
func TestCmdletParameters(t *testing.T) {
	c := startCatalogd(t, true)
	p := startProviderd(t, c.URL(""), "")

	out, errOut, code := cimageStreams(t, p, "install", "-Name", "NanoServer", "-Version", "10.0.10586.0", "--quiet")
	if code != 0 || !regexp.MustCompile(`^Downloaded in 0 hours, 0 minutes, \d+ seconds?\.\n$`).MatchString(out) || errOut != "" {
		t.Fatalf("install -Name -Version --quiet: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if img := findImage(p.images(t), "NanoServer", "10.0.10586.0"); img == nil {
		t.Fatalf("installed: %s", describe(p.images(t)))
	}
	out = mustCimage(t, p, "find", "NanoServer", "--version", "10.0.14393.0")
	if !strings.Contains(out, "10.0.14393.0") || strings.Contains(out, "10.0.10586.0") {
		t.Fatalf("find --version:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"install", "NanoServer", "--required-version", "abc"}, 2, "The specified version 'abc' is invalid."},
		{[]string{"remove", "NanoServer", "--forse"}, 2, "did you mean --force?"},
		{[]string{"install", "NanoServer", "--all-versions", "--version", "10.0.10586.0"}, 2, "You cannot use the parameters AllVersions and RequiredVersion in the same command."},
		{[]string{"images", "NanoSrever"}, 3, `cimage: image "NanoSrever" is not installed`},
		{[]string{"install", "NoSuchImage"}, 3, "Run `cimage source list` to see the sources."},
		{[]string{"source"}, 2, "source add NAME URL"},
	} {
		_, errOut, code := cimageStreams(t, p, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("cimage %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, errOut, tc.code, tc.want)
		}
		if strings.Contains(errOut, "Get-PackageSource") || regexp.MustCompile(`: (not found|conflict|invalid argument)\n`).MatchString(errOut) {
			t.Errorf("cimage %s: a cmdlet or an error class in %q", strings.Join(tc.args, " "), errOut)
		}
	}
	for _, group := range []string{"container", "source", "jobs"} {
		out, _, code := cimageStreams(t, p, group, "-h")
		if code != 0 || !strings.Contains(out, "Subcommands") {
			t.Errorf("cimage %s -h: exit %d\n%s", group, code, out)
		}
	}

	// --output json: the error is an object on stderr, the exit code
	// unchanged.
	out, errOut, code = cimageStreams(t, p, "--output", "json", "images", "NanoSrever")
	var e struct {
		Error struct{ Class, Message string }
	}
	if code != 3 || out != "" || json.Unmarshal([]byte(errOut), &e) != nil || e.Error.Class != "NotFound" || e.Error.Message != `image "NanoSrever" is not installed` {
		t.Fatalf("json error: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// save --what-if plans: the image and its parent, from the source,
	// and the file; nothing written.
	dir := t.TempDir()
	out = mustCimage(t, p, "save", "microsoft/iis", "--path", dir, "--what-if")
	file := filepath.Join(dir, "microsoft_iis-1-0-0-0.tar")
	if want := "What if: saving WindowsServerCore 10.0.14393.0 to " + file + "\nWhat if: saving microsoft/iis 1.0.0.0 to " + file + "\n"; out != want {
		t.Fatalf("save --what-if:\n%s\nwant:\n%s", out, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("save --what-if wrote %v", entries)
	}

	// remove NAME with two versions installed lists them and removes
	// nothing; --all-versions names them all, and --force removes them.
	mustCimage(t, p, "install", "NanoServer", "--quiet")
	_, errOut, code = cimageStreams(t, p, "remove", "NanoServer")
	if code != 4 || !strings.Contains(errOut, `"NanoServer" matches 2 installed images:`) {
		t.Fatalf("remove NanoServer: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code = cimageStreams(t, p, "remove", "NanoServer", "--all-versions"); code != 4 || !strings.Contains(errOut, "matches 2 installed images") {
		t.Fatalf("remove NanoServer --all-versions: exit %d, stderr %q", code, errOut)
	}
	if n := len(p.images(t)); n != 2 {
		t.Fatalf("a refused remove left %d images", n)
	}

	// save --output json names the whole image, not zero values.
	out = mustCimage(t, p, "--output", "json", "save", "NanoServer", "--version", "10.0.10586.0", "--path", dir)
	var saved api.SaveResult
	if err := json.Unmarshal([]byte(out), &saved); err != nil {
		t.Fatalf("save json %q: %v", out, err)
	}
	if saved.Size <= 0 || saved.Image.Created.IsZero() || saved.Image.Size <= 0 || saved.Image.Publisher != "CN=Microsoft" || !saved.Image.IsOSImage {
		t.Fatalf("save json: %+v", saved)
	}
	out = mustCimage(t, p, "remove", "NanoServer", "--all-versions", "--force")
	if strings.Count(out, "Removed NanoServer ") != 2 {
		t.Fatalf("remove NanoServer --all-versions --force:\n%s", out)
	}
}

// TestFindWarnsOfSkippedSource: with one of two sources down, find says
// so on stderr and in its JSON, and a search that finds nothing says that
// the answer may be incomplete.
func TestFindWarnsOfSkippedSource(t *testing.T) {
	c := startCatalogd(t, true)
	p := startProviderd(t, c.URL(""), "", "--source", "down=http://127.0.0.1:1")

	out, errOut, code := cimageStreams(t, p, "find")
	if code != 0 || !strings.Contains(out, "NanoServer") || !strings.HasPrefix(errOut, "WARNING: source down was skipped: its index cannot be read: ") {
		t.Fatalf("find: exit %d, stderr %q\n%s", code, errOut, out)
	}
	out = mustCimage(t, p, "--output", "json", "find")
	var res api.FindResponse
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Images) == 0 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "source down was skipped") {
		t.Fatalf("find json: %+v, %v", res, err)
	}
	_, errOut, code = cimageStreams(t, p, "find", "BigImage")
	if code != 3 || !strings.Contains(errOut, "No match was found for the specified search criteria and package name 'BigImage'. The answer may be incomplete: source down was skipped") {
		t.Fatalf("find BigImage: exit %d, stderr %q", code, errOut)
	}

	// A source that answered, then stopped: the answer comes from the
	// last sync, and says so.
	c.kill(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, errOut, code = cimageStreams(t, p, "find")
		if code == 0 && strings.Contains(errOut, "WARNING: source catalog: the index is stale: the last sync failed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("find with catalogd stopped: exit %d, stderr %q", code, errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(out, "NanoServer") || strings.Contains(errOut, ": unavailable") {
		t.Fatalf("find with catalogd stopped: stderr %q\n%s", errOut, out)
	}
	_, errOut, code = cimageStreams(t, p, "find", "BigImage")
	if code != 3 || !strings.Contains(errOut, "The answer may be incomplete: ") || !strings.Contains(errOut, "source catalog: the index is stale") {
		t.Fatalf("find BigImage with catalogd stopped: exit %d, stderr %q", code, errOut)
	}
}

// TestInstallShowsRetries: a download whose connection keeps dropping
// shows each retry in the client as it happens, and when the install gives
// up its error names the layer's digest once.
func TestInstallShowsRetries(t *testing.T) {
	if testing.Short() {
		t.Skip("gives up after the ten attempts of the retry policy, about 20 s")
	}
	c := startCatalogd(t, true)
	proxy := newFaultProxy(t, c.URL(""))
	// Every blob body is cut before its first byte: no attempt makes
	// progress, so the install gives up after the policy's attempts.
	proxy.set(func(p *faultProxy) { p.cutAfter, p.cuts = 0, 1000 })
	p := startProviderd(t, proxy.URL, "")

	start := time.Now()
	out, errOut, code := cimageStreams(t, p, "install", "NanoServer", "--version", "10.0.10586.0")
	t.Logf("gave up after %s", time.Since(start).Round(time.Second))
	if code != 1 {
		t.Fatalf("install: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	retries := regexp.MustCompile(`(?m)^WARNING: (layer|config) sha256:[0-9a-f]{12} of image NanoServer 10\.0\.10586\.0: attempt (\d+) of 10 in \S+: .+$`).FindAllStringSubmatch(errOut, -1)
	if len(retries) < 9 {
		t.Fatalf("%d retry warnings, want one per retry:\n%s", len(retries), errOut)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	last := lines[len(lines)-1]
	t.Logf("%s\n...\n%s", retries[0][0], last)
	full := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindAllString(last, -1)
	if !strings.HasPrefix(last, "cimage: ") || len(full) != 1 || !strings.Contains(last, "gave up after 10 attempts without progress") {
		t.Fatalf("the error names %d digests, want 1: %q", len(full), last)
	}
	if strings.Contains(last, "/v2/") {
		t.Fatalf("the error repeats the request's path: %q", last)
	}
}
