package e2e

import (
	"archive/tar"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	godigest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog/find"
)

// The exit code of cimage when a signature policy refuses an image.
const exitUntrusted = 5

// signedCatalog is a seeded catalogd in which catalogd signed, with the
// key pair in dir (k.key, k.pub), NanoServer 10.0.14393.0 and
// microsoft/iis, but not their parent WindowsServerCore nor NanoServer
// 10.0.10586.0.
func signedCatalog(t *testing.T, dir string) *catalogd {
	t.Helper()
	t.Setenv("CATALOGD_KEY_PASSWORD", "catalog key password")
	runCatalogd(t, "keygen", "--out", filepath.Join(dir, "k"))
	root := t.TempDir()
	runCatalogd(t, "seed", "--root", root)
	runCatalogd(t, "sign", "--root", root, "--key", filepath.Join(dir, "k.key"), "NanoServer:10.0.14393.0", "microsoft/iis")
	return startCatalogdAt(t, root)
}

// imageJSON is `cimage images --output json`.
func imagesJSON(t *testing.T, p *providerd) []api.Image {
	t.Helper()
	var res api.ImagesResponse
	if err := json.Unmarshal([]byte(mustCimage(t, p, "--output", "json", "images")), &res); err != nil {
		t.Fatal(err)
	}
	return res.Images
}

// refused installs args under a policy that must refuse it: exit 5, an
// error naming want, and the installed images as they were.
func refused(t *testing.T, p *providerd, want string, args ...string) {
	t.Helper()
	before := imagesJSON(t, p)
	_, errOut, code := cimageStreams(t, p, args...)
	if code != exitUntrusted || !strings.Contains(errOut, want) || !strings.Contains(errOut, "no valid signature by a trusted key") {
		t.Fatalf("cimage %s: exit %d, stderr %q; want exit %d and %q", strings.Join(args, " "), code, errOut, exitUntrusted, want)
	}
	if after := imagesJSON(t, p); len(after) != len(before) {
		t.Fatalf("a refused install recorded images: %d before, %d after", len(before), len(after))
	}
	t.Logf("cimage %s: %s", strings.Join(args, " "), lastLine(errOut))
}

// TestSignaturePolicy: cosign verifies what catalogd signed; a source
// with --trust-key installs an image signed by its key, records who
// signed it, and refuses, with nothing recorded, an unsigned image, an
// image signed by another key, a signed child of an unsigned parent, a
// signature copied from another digest and a manifest changed after
// signing.
func TestSignaturePolicy(t *testing.T) {
	cosign := newClient(t, "cosign")
	dir := t.TempDir()
	c := signedCatalog(t, dir)

	// The real cosign accepts catalogd's signature.
	out := cosign.run(t, "verify", "--key", filepath.Join(dir, "k.pub"), "--insecure-ignore-tlog", "--allow-http-registry",
		c.Addr+"/nanoserver:10.0.14393.0")
	if !strings.Contains(out, `"docker-manifest-digest"`) || !strings.Contains(out, "CN=Microsoft") {
		t.Fatalf("cosign verify:\n%s", out)
	}

	p := startProviderd(t, c.URL(""), "")
	mustCimage(t, p, "source", "add", "trusted", c.URL(""), "--trust-key", filepath.Join(dir, "k.pub"))
	out = mustCimage(t, p, "source", "list")
	if !strings.Contains(out, "required (1 key)") {
		t.Fatalf("source list:\n%s", out)
	}
	// find lists the unsigned images too, and marks them.
	var found api.FindResponse
	if err := json.Unmarshal([]byte(mustCimage(t, p, "--output", "json", "find", "NanoServer", "--all-versions", "--source", "trusted")), &found); err != nil {
		t.Fatal(err)
	}
	marks := map[string]bool{}
	for _, e := range found.Images {
		if e.Policy != api.SignaturesRequired {
			t.Fatalf("find entry %+v: no policy", e)
		}
		marks[e.Version] = e.Signatures
	}
	if len(marks) != 2 || !marks["10.0.14393.0"] || marks["10.0.10586.0"] {
		t.Fatalf("find marks %v, want 10.0.14393.0 signed and 10.0.10586.0 not", marks)
	}
	out = mustCimage(t, p, "find", "NanoServer", "--all-versions", "--source", "trusted")
	if !regexp.MustCompile(`(?m)^NanoServer\s+10\.0\.10586\.0\s+trusted\s+none\s`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^NanoServer\s+10\.0\.14393\.0\s+trusted\s+present\s`).MatchString(out) {
		t.Fatalf("find table:\n%s", out)
	}
	// Without a policy the table is the reference's.
	if out = mustCimage(t, p, "find", "NanoServer", "--source", "catalog"); strings.Contains(out, "Signature") {
		t.Fatalf("find without a policy:\n%s", out)
	}

	// Signed by the trusted key: installs, and says which key.
	mustCimage(t, p, "install", "NanoServer", "--version", "10.0.14393.0", "--source", "trusted", "--quiet")
	var keyID string
	for _, img := range imagesJSON(t, p) {
		if img.Name == "NanoServer" {
			keyID = img.Signed
		}
	}
	if !strings.HasPrefix(keyID, "key sha256:") {
		t.Fatalf("the signed install records Signed %q", keyID)
	}

	refused(t, p, "it has no signature", "install", "NanoServer", "--version", "10.0.10586.0", "--source", "trusted")
	// microsoft/iis is signed, its parent is not.
	refused(t, p, "WindowsServerCore 10.0.14393.0", "install", "microsoft/iis", "--source", "trusted")
	// Nor when the parent is installed already, from a source without a
	// policy: it is checked against this source's.
	mustCimage(t, p, "install", "WindowsServerCore", "--version", "10.0.14393.0", "--source", "catalog", "--quiet")
	refused(t, p, "its installed parent WindowsServerCore 10.0.14393.0", "install", "microsoft/iis", "--source", "trusted")
	mustCimage(t, p, "remove", "WindowsServerCore")

	// Another key.
	t.Setenv("CATALOGD_KEY_PASSWORD", "other")
	runCatalogd(t, "keygen", "--out", filepath.Join(dir, "other"))
	mustCimage(t, p, "source", "add", "other", c.URL(""), "--trust-key", filepath.Join(dir, "other.pub"))
	refused(t, p, "no trusted key verifies it", "install", "NanoServer", "--version", "10.0.14393.0", "--source", "other", "--force")

	// The signature of NanoServer 10.0.14393.0 copied onto the tag of
	// 10.0.10586.0's digest.
	hc := &http.Client{}
	signedDigest := digestOf(t, c, "nanoserver", "10.0.14393.0")
	otherDigest := digestOf(t, c, "nanoserver", "10.0.10586.0")
	sig := getManifest(t, c, "nanoserver", find.SignatureTag(signedDigest))
	if err := c.send(hc, http.MethodPut, "/v2/nanoserver/manifests/"+find.SignatureTag(otherDigest), ocispec.MediaTypeImageManifest, sig, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	refused(t, p, "it signs manifest \""+signedDigest+"\"", "install", "NanoServer", "--version", "10.0.10586.0", "--source", "trusted")

	// A manifest changed after signing: the tag now names a manifest
	// with another publisher, and the old signature is copied to it.
	var m ocispec.Manifest
	if err := json.Unmarshal(getManifest(t, c, "nanoserver", "10.0.14393.0"), &m); err != nil {
		t.Fatal(err)
	}
	m.Annotations["org.opencontainers.image.description"] = "changed after signing"
	changed, _ := json.Marshal(m)
	// Both of the old manifest's tags move, so that no tag names it.
	for _, tag := range []string{"10.0.14393.0", "latest"} {
		if err := c.send(hc, http.MethodPut, "/v2/nanoserver/manifests/"+tag, ocispec.MediaTypeImageManifest, changed, http.StatusCreated); err != nil {
			t.Fatal(err)
		}
	}
	changedDigest := digestOf(t, c, "nanoserver", "10.0.14393.0")
	if err := c.send(hc, http.MethodPut, "/v2/nanoserver/manifests/"+find.SignatureTag(changedDigest), ocispec.MediaTypeImageManifest, sig, http.StatusCreated); err != nil {
		t.Fatal(err)
	}
	mustCimage(t, p, "source", "refresh", "trusted")
	refused(t, p, "it signs manifest \""+signedDigest+"\"", "install", "NanoServer", "--version", "10.0.14393.0", "--source", "trusted", "--force")

	// Under an optional policy the same image installs, recorded as
	// unverified.
	mustCimage(t, p, "source", "add", "lenient", c.URL(""), "--trust-key", filepath.Join(dir, "k.pub"), "--signatures", "optional")
	mustCimage(t, p, "install", "NanoServer", "--version", "10.0.10586.0", "--source", "lenient", "--quiet")
	for _, img := range imagesJSON(t, p) {
		if img.Version == "10.0.10586.0" && img.Signed != api.SignedUnverified {
			t.Fatalf("an optional policy recorded Signed %q, want %q", img.Signed, api.SignedUnverified)
		}
	}
	// A policy that checks needs a key.
	if _, errOut, code := cimageStreams(t, p, "source", "add", "keyless", c.URL(""), "--signatures", "required"); code != 1 || !strings.Contains(errOut, "needs a trusted key") {
		t.Fatalf("required without a key: exit %d, %q", code, errOut)
	}
}

// TestCosignSignedImages: providerd accepts what the real cosign signed,
// in catalogd and in the CNCF distribution registry, with the matching
// --trust-key, and refuses a signature whose publisher disagrees with the
// manifest's. cosign verifies catalogd's signatures copied into the
// registry too.
func TestCosignSignedImages(t *testing.T) {
	cosign := newClient(t, "cosign")
	crane := newClient(t, "crane")
	reg := tool(t, "registry")
	dir := t.TempDir()
	c := signedCatalog(t, dir)
	cosign.env = append(cosign.env, "COSIGN_PASSWORD=cosign key password")
	cosign.run(t, "generate-key-pair", "--output-key-prefix", filepath.Join(dir, "cosign"))
	signFlags := []string{"sign", "--key", filepath.Join(dir, "cosign.key"), "--use-signing-config=false", "--new-bundle-format=false",
		"--tlog-upload=false", "--allow-http-registry", "-y"}

	// cosign signs NanoServer 10.0.10586.0 in catalogd, and, with a
	// publisher claim that the manifest contradicts, WindowsServerCore
	// 10.0.10586.0.
	nano := digestOf(t, c, "nanoserver", "10.0.10586.0")
	wsc := digestOf(t, c, "windowsservercore", "10.0.10586.0")
	creds := []string{"--registry-username", c.User, "--registry-password", c.Password}
	cosign.run(t, slices.Concat(signFlags, creds, []string{c.Addr + "/nanoserver@" + nano})...)
	cosign.run(t, slices.Concat(signFlags, creds, []string{"-a", "org.opencontainers.image.vendor=CN=Mallory", c.Addr + "/windowsservercore@" + wsc})...)

	p := startProviderd(t, c.URL(""), "")
	mustCimage(t, p, "source", "add", "cosigned", c.URL(""), "--trust-key", filepath.Join(dir, "cosign.pub"))
	mustCimage(t, p, "install", "NanoServer", "--version", "10.0.10586.0", "--source", "cosigned", "--quiet")
	refused(t, p, `the manifest names the publisher "CN=Microsoft"`, "install", "WindowsServerCore", "--version", "10.0.10586.0", "--source", "cosigned")

	// The distribution registry: crane copies the images and catalogd's
	// signature tags; cosign signs one more image there.
	addr := freeAddr(t)
	rdir := t.TempDir()
	cfg := filepath.Join(rdir, "config.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n",
		filepath.Join(rdir, "data"), addr)), 0o644)
	startProcess(t, reg, []string{"OTEL_SDK_DISABLED=true"}, "serve", cfg)
	waitHTTP(t, "http://"+addr+"/v2/")
	nano14393 := digestOf(t, c, "nanoserver", "10.0.14393.0")
	for _, ref := range []string{"nanoserver:10.0.10586.0", "nanoserver:10.0.14393.0", "nanoserver:" + find.SignatureTag(nano14393)} {
		crane.run(t, "copy", "--insecure", c.Addr+"/"+ref, addr+"/"+ref)
	}
	out := cosign.run(t, "verify", "--key", filepath.Join(dir, "k.pub"), "--insecure-ignore-tlog", "--allow-http-registry", addr+"/nanoserver:10.0.14393.0")
	if !strings.Contains(out, nano14393) {
		t.Fatalf("cosign verify in the registry:\n%s", out)
	}
	cosign.run(t, slices.Concat(signFlags, []string{addr + "/nanoserver@" + nano})...)

	q := startProviderd(t, "http://"+addr, "")
	mustCimage(t, q, "source", "add", "regsigned", "http://"+addr, "--trust-key", filepath.Join(dir, "cosign.pub"), "--trust-key", filepath.Join(dir, "k.pub"))
	// The crawl of a plain registry sees the signature tags too.
	var found api.FindResponse
	if err := json.Unmarshal([]byte(mustCimage(t, q, "--output", "json", "find", "NanoServer", "--all-versions", "--source", "regsigned")), &found); err != nil {
		t.Fatal(err)
	}
	if len(found.Images) != 2 || !found.Images[0].Signatures || !found.Images[1].Signatures {
		t.Fatalf("find in the registry: %+v", found.Images)
	}
	mustCimage(t, q, "install", "NanoServer", "--version", "10.0.10586.0", "--source", "regsigned", "--quiet")
	mustCimage(t, q, "install", "NanoServer", "--version", "10.0.14393.0", "--source", "regsigned", "--quiet")
	signed := map[string]string{}
	for _, img := range imagesJSON(t, q) {
		signed[img.Version] = img.Signed
	}
	if !strings.HasPrefix(signed["10.0.10586.0"], "key sha256:") || !strings.HasPrefix(signed["10.0.14393.0"], "key sha256:") ||
		signed["10.0.10586.0"] == signed["10.0.14393.0"] {
		t.Fatalf("signed by: %v, want cosign's key and catalogd's", signed)
	}
}

// digestOf is the digest of repo:tag in catalogd, which must have it.
func digestOf(t *testing.T, c *catalogd, repo, tag string) string {
	t.Helper()
	d, status := manifestDigest(t, c, repo, tag)
	if d == "" {
		t.Fatalf("HEAD %s:%s: %d", repo, tag, status)
	}
	return d
}

// getManifest reads the bytes of repo:ref from catalogd.
func getManifest(t *testing.T, c *catalogd, repo, ref string) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.URL("/v2/"+repo+"/manifests/"+ref), nil)
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s:%s: %d %s", repo, ref, resp.StatusCode, b)
	}
	return b
}

// TestSignedArchiveOffline: a tar saved from a verified install carries
// the signature manifest in its OCI layout (index.json, under cosign's
// tag); installed with --path on a host whose source has the same policy,
// and no source reachable, it verifies. The same tar with a byte of the
// signature flipped is refused, and records nothing.
func TestSignedArchiveOffline(t *testing.T) {
	dir := t.TempDir()
	c := signedCatalog(t, dir)
	p := startProviderd(t, c.URL(""), "")
	mustCimage(t, p, "source", "add", "trusted", c.URL(""), "--trust-key", filepath.Join(dir, "k.pub"))
	mustCimage(t, p, "install", "NanoServer", "--version", "10.0.14393.0", "--source", "trusted", "--quiet")
	tarFile := filepath.Join(dir, "nano.tar")
	mustCimage(t, p, "save", "NanoServer", "--version", "10.0.14393.0", "--path", tarFile)
	digest := digestOf(t, c, "nanoserver", "10.0.14393.0")

	entries := readTar(t, tarFile)
	var idx ocispec.Index
	if err := json.Unmarshal(entries["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	var sigEntry *ocispec.Descriptor
	for i, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == find.SignatureTag(digest) {
			sigEntry = &idx.Manifests[i]
		}
	}
	if sigEntry == nil {
		t.Fatalf("index.json has no %s: %s", find.SignatureTag(digest), entries["index.json"])
	}

	// Another host, offline: its only source is down, with the same key.
	q := startProviderd(t, "http://127.0.0.1:1", "", "--source", "offline=http://127.0.0.1:1")
	mustCimage(t, q, "source", "add", "trusted", "http://127.0.0.1:1", "--trust-key", filepath.Join(dir, "k.pub"))

	// The signature flipped: the signature manifest is rewritten with one
	// byte of its signature changed, and index.json names the new one.
	var sm ocispec.Manifest
	smBytes := entries["blobs/sha256/"+sigEntry.Digest.Encoded()]
	if err := json.Unmarshal(smBytes, &sm); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(sm.Layers[0].Annotations["dev.cosignproject.cosign/signature"])
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x01
	sm.Layers[0].Annotations["dev.cosignproject.cosign/signature"] = base64.StdEncoding.EncodeToString(raw)
	flipped, _ := json.Marshal(sm)
	newDigest := godigest.FromBytes(flipped)
	delete(entries, "blobs/sha256/"+sigEntry.Digest.Encoded())
	entries["blobs/sha256/"+newDigest.Encoded()] = flipped
	sigEntry.Digest, sigEntry.Size = newDigest, int64(len(flipped))
	entries["index.json"], _ = json.Marshal(idx)
	flippedTar := filepath.Join(dir, "flipped.tar")
	files := map[string]string{}
	for n, b := range entries {
		files[n] = string(b)
	}
	writeTar(t, flippedTar, files)
	refused(t, q, "no trusted key verifies it", "install", "--path", flippedTar)

	out := mustCimage(t, q, "install", "--path", tarFile)
	if !strings.Contains(out, "NanoServer") {
		t.Fatalf("install --path:\n%s", out)
	}
	imgs := imagesJSON(t, q)
	if len(imgs) != 1 || !strings.HasPrefix(imgs[0].Signed, "key sha256:") {
		t.Fatalf("offline install: %+v", imgs)
	}
}

// readTar reads the regular files of a tar by name.
func readTar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			out[hdr.Name] = b
		}
	}
}
