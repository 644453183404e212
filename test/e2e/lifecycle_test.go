package e2e

import (
	"archive/tar"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/containerprovider/containerprovider/api"
)

// TestReferenceSession is the documentation's session: install NanoServer,
// create a container, copy a file in, stop it, make DemoImage from it, and
// check the removal rules.
func TestReferenceSession(t *testing.T) {
	c := startCatalogd(t, true)
	p := startProviderd(t, c.URL(""), "")
	mustCimage(t, p, "install", "NanoServer", "--required-version", "10.0.10586.0")
	mustCimage(t, p, "container", "create", "NanoServer", "--name", "web1")
	src := filepath.Join(t.TempDir(), "index.html")
	os.WriteFile(src, []byte("<h1>demo</h1>\n"), 0o644)
	mustCimage(t, p, "container", "cp", src, "web1:/inetpub/wwwroot")
	mustCimage(t, p, "container", "stop", "web1")
	if cs := p.containers(t); len(cs) != 1 || cs[0].Name != "web1" || cs[0].State != api.ContainerStopped ||
		cs[0].ParentImageName != "NanoServer" || len(cs[0].ID) != 64 {
		t.Fatalf("containers: %+v", cs)
	}
	out := mustCimage(t, p, "container", "list")
	for _, col := range []string{"Name", "Id", "Image", "ParentImageName", "State", "Created", "web1"} {
		if !strings.Contains(out, col) {
			t.Fatalf("cimage container list has no %s:\n%s", col, out)
		}
	}
	mustCimage(t, p, "new", "--container", "web1", "--publisher", "Demo", "--name", "DemoImage", "--version", "1.0")

	out = mustCimage(t, p, "images")
	if !regexp.MustCompile(`(?m)^DemoImage\s+CN=Demo\s+1\.0\.0\.0\s+False\s*$`).MatchString(out) {
		t.Fatalf("cimage images:\n%s", out)
	}
	out = mustCimage(t, p, "images", "--parent")
	if !strings.Contains(out, "ContainerImage (Name = 'NanoServer') [Publisher = 'CN=Microsoft', Version = '10.0.10586.0']") {
		t.Fatalf("cimage images --parent:\n%s", out)
	}

	out, code := cimage(t, p, "remove", "NanoServer")
	if code != 4 || !strings.Contains(out, "web1") || !strings.Contains(out, "DemoImage") {
		t.Fatalf("remove NanoServer: exit %d, want 4 naming web1 and DemoImage:\n%s", code, out)
	}
	mustCimage(t, p, "container", "rm", "web1")
	mustCimage(t, p, "remove", "DemoImage")
	mustCimage(t, p, "remove", "NanoServer")
	if left := blobFiles(t, p.Root); len(left) != 0 {
		t.Fatalf("%d blobs left: %v", len(left), left)
	}
}

// records returns the installed images keyed by digest, without the
// per-host fields (install time, source).
func records(t *testing.T, p *providerd) map[string]string {
	out := map[string]string{}
	for _, img := range p.images(t) {
		parent := ""
		if img.ParentImage != nil {
			parent = img.ParentImage.Name + " " + img.ParentImage.Version + " " + img.ParentImage.Digest
		}
		out[img.Digest] = fmt.Sprintf("%s %s %s os=%v parent=%s size=%d", img.Name, img.Version, img.Publisher, img.IsOSImage, parent, img.Size)
	}
	return out
}

// TestSaveAndInstallFromFile saves microsoft/iis on one providerd and
// installs the file on another that has no reachable source. Real clients
// read the same file.
func TestSaveAndInstallFromFile(t *testing.T) {
	c := startCatalogd(t, true)
	a := startProviderd(t, c.URL(""), "")
	mustCimage(t, a, "install", "microsoft/iis")
	dir := filepath.Join(t.TempDir(), "saved")
	os.MkdirAll(dir, 0o755)
	mustCimage(t, a, "save", "microsoft/iis", "--path", dir)
	file := filepath.Join(dir, "microsoft_iis-1-0-0-0.tar")
	if _, err := os.Stat(file); err != nil {
		entries, _ := os.ReadDir(dir)
		t.Fatalf("saved file: %v (directory holds %v)", err, entries)
	}
	if out, code := cimage(t, a, "save", "microsoft/iis", "--path", dir); code == 0 || !strings.Contains(out, "force") {
		t.Fatalf("save over an existing file without --force: exit %d\n%s", code, out)
	}

	b := startProviderd(t, "http://127.0.0.1:1", "")
	mustCimage(t, b, "install", "--path", file)
	want, got := records(t, a), records(t, b)
	if fmt.Sprint(want) != fmt.Sprint(got) {
		t.Fatalf("records after install from file:\n got %v\nwant %v", got, want)
	}
	blobNames := func(root string) []string {
		var out []string
		for _, f := range blobFiles(t, root) {
			out = append(out, filepath.Base(f))
		}
		sort.Strings(out)
		return out
	}
	if fmt.Sprint(blobNames(a.Root)) != fmt.Sprint(blobNames(b.Root)) {
		t.Fatalf("blobs differ:\n%v\n%v", blobNames(a.Root), blobNames(b.Root))
	}

	t.Run("skopeo", func(t *testing.T) {
		skopeo := tool(t, "skopeo")
		out := filepath.Join(t.TempDir(), "layout")
		(&client{bin: skopeo, env: os.Environ()}).run(t, "copy", "oci-archive:"+file+":1.0.0.0", "oci:"+out+":iis")
		verifyLayout(t, out)
	})
	t.Run("crane push", func(t *testing.T) {
		crane := newClient(t, "crane")
		crane.run(t, "auth", "login", c.Addr, "-u", c.User, "-p", c.Password)
		crane.run(t, "push", "--insecure", file, c.Addr+"/pushed/iis:1.0.0.0")
		got := mustFindOne(t, c, "pushed/iis", "1.0.0.0")
		if got.Digest == "" {
			t.Fatalf("find after crane push: %+v", got)
		}
	})
}

// tarOf builds an archive from raw entries, for the malicious cases.
type tarEntry struct {
	hdr  tar.Header
	body string
}

func tarOf(t *testing.T, entries ...tarEntry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		h.Mode = 0o644
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return buf.Bytes()
}

// TestInstallRefusesMaliciousArchives feeds crafted archives to
// `cimage install --path`: each is refused, nothing is written outside the
// root, and the store does not change.
func TestInstallRefusesMaliciousArchives(t *testing.T) {
	c := startCatalogd(t, true)
	a := startProviderd(t, c.URL(""), "")
	mustCimage(t, a, "install", "NanoServer")
	dir := t.TempDir()
	mustCimage(t, a, "save", "NanoServer", "--path", dir)
	good, err := os.ReadFile(filepath.Join(dir, "NanoServer-10-0-14393-0.tar"))
	if err != nil {
		t.Fatal(err)
	}
	var entries []tarEntry
	tr := tar.NewReader(bytes.NewReader(good))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		var b bytes.Buffer
		b.ReadFrom(tr)
		entries = append(entries, tarEntry{hdr: tar.Header{Name: h.Name, Typeflag: h.Typeflag}, body: b.String()})
	}
	withExtra := func(e ...tarEntry) []byte { return tarOf(t, append(append([]tarEntry{}, entries...), e...)...) }
	without := func(name string) []byte {
		var keep []tarEntry
		for _, e := range entries {
			if e.hdr.Name != name {
				keep = append(keep, e)
			}
		}
		return tarOf(t, keep...)
	}
	var blob tarEntry
	for _, e := range entries {
		if strings.HasPrefix(e.hdr.Name, "blobs/sha256/") && len(e.body) > 1000 {
			blob = e
		}
	}
	tampered := func() []byte {
		var out []tarEntry
		for _, e := range entries {
			if e.hdr.Name == blob.hdr.Name {
				b := []byte(e.body)
				b[len(b)/2] ^= 0xff
				e.body = string(b)
			}
			out = append(out, e)
		}
		return tarOf(t, out...)
	}()
	outside := filepath.Join(t.TempDir(), "escaped")
	cases := []struct {
		name string
		data []byte
	}{
		{"tar slip", withExtra(tarEntry{hdr: tar.Header{Name: "../../../../../../" + strings.TrimPrefix(outside, "/")}, body: "x"})},
		{"absolute path", withExtra(tarEntry{hdr: tar.Header{Name: outside}, body: "x"})},
		{"symlink escape", withExtra(tarEntry{hdr: tar.Header{Name: "blobs/link", Typeflag: tar.TypeSymlink, Linkname: outside}})},
		{"hard link", withExtra(tarEntry{hdr: tar.Header{Name: "blobs/hard", Typeflag: tar.TypeLink, Linkname: "index.json"}})},
		{"duplicate entry", withExtra(tarEntry{hdr: tar.Header{Name: "index.json"}, body: entries[0].body})},
		{"wrong digest", tampered},
		{"truncated", good[:len(good)/2]},
		{"oversize declared content", withExtra(tarEntry{hdr: tar.Header{Name: "blobs/sha256/" + strings.Repeat("ab", 32)}, body: strings.Repeat("z", 4096)})},
		{"missing index.json", without("index.json")},
		// An OCI layout without manifest.json is an archive (skopeo's);
		// one without oci-layout is not.
		{"missing oci-layout", without("oci-layout")},
		{"layer link escape", withExtra(tarEntry{hdr: tar.Header{Name: strings.Repeat("ab", 32) + "/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../../../../../.." + outside}})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := startProviderd(t, "http://127.0.0.1:1", "")
			before := blobFiles(t, b.Root)
			file := filepath.Join(t.TempDir(), "bad.tar")
			os.WriteFile(file, tc.data, 0o644)
			out, code := cimage(t, b, "install", "--path", file)
			if code == 0 {
				t.Fatalf("a %s archive was installed:\n%s", tc.name, out)
			}
			if imgs := b.images(t); len(imgs) != 0 {
				t.Fatalf("records after a refused archive: %s", describe(imgs))
			}
			if after := blobFiles(t, b.Root); len(after) != len(before) {
				t.Fatalf("the store changed: %d blobs before, %d after", len(before), len(after))
			}
			if _, err := os.Lstat(outside); !os.IsNotExist(err) {
				t.Fatalf("something was written outside the root: %v", err)
			}
		})
	}
}

// containers lists the containers through the API.
func (p *providerd) containers(t *testing.T) []api.Container {
	t.Helper()
	var out struct {
		Containers []api.Container `json:"containers"`
	}
	if code, body := p.call(t, http.MethodGet, "/v1/containers", nil, &out); code != http.StatusOK {
		t.Fatalf("GET /v1/containers: %d %s", code, body)
	}
	return out.Containers
}
