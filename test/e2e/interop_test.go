package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// verifyLayout checks that every blob of an OCI image layout hashes to its
// file name, and returns the digest that index.json names.
func verifyLayout(t *testing.T, dir string) string {
	t.Helper()
	blobs, err := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	if err != nil || len(blobs) == 0 {
		t.Fatalf("no blobs in layout %s: %v", dir, err)
	}
	for _, p := range blobs {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, f)
		f.Close()
		if got := hex.EncodeToString(h.Sum(nil)); got != filepath.Base(p) {
			t.Fatalf("blob %s hashes to %s", filepath.Base(p), got)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, b)
	}
	return idx.Manifests[0].Digest.String()
}

// TestCraneInterop pulls a seeded image with crane and checks its digests,
// then pushes an image with crane and finds it through the find extension.
func TestCraneInterop(t *testing.T) {
	crane := newClient(t, "crane")
	c := startCatalogd(t, true)
	want := mustFindOne(t, c, "NanoServer", "10.0.14393.0")
	ref := c.Addr + "/nanoserver:10.0.14393.0"

	if got := strings.TrimSpace(crane.run(t, "digest", "--insecure", ref)); got != want.Digest {
		t.Fatalf("crane digest = %s, find says %s", got, want.Digest)
	}
	crane.run(t, "validate", "--insecure", "--remote", ref)
	layout := filepath.Join(t.TempDir(), "layout")
	crane.run(t, "pull", "--insecure", "--format", "oci", ref, layout)
	if got := verifyLayout(t, layout); got != want.Digest {
		t.Fatalf("pulled layout names %s, find says %s", got, want.Digest)
	}
	// A child image pulls complete: the parent's layers come with it.
	crane.run(t, "validate", "--insecure", "--remote", c.Addr+"/microsoft/iis:1.0.0.0")

	// Push: an image built by crane from a layer tar.
	crane.run(t, "auth", "login", c.Addr, "-u", c.User, "-p", c.Password)
	layer := filepath.Join(t.TempDir(), "layer.tar")
	writeTar(t, layer, map[string]string{"hello.txt": "pushed by crane\n"})
	pushed := c.Addr + "/crane/hello:1.0.0.0"
	crane.run(t, "append", "--insecure", "-f", layer, "-t", pushed)
	digest := strings.TrimSpace(crane.run(t, "digest", "--insecure", pushed))
	got := mustFindOne(t, c, "crane/hello", "1.0.0.0")
	if got.Digest != digest || !got.IsOSImage {
		t.Fatalf("find after crane push = %+v, want digest %s", got, digest)
	}
}

// TestOrasInterop fetches a seeded image's manifest and layers with oras and
// checks their digests, then pushes an artifact with oras and finds it.
func TestOrasInterop(t *testing.T) {
	oras := newClient(t, "oras")
	c := startCatalogd(t, true)
	want := mustFindOne(t, c, "WindowsServerCore", "10.0.10586.0")
	ref := c.Addr + "/windowsservercore:10.0.10586.0"

	var desc ocispec.Descriptor
	if err := json.Unmarshal([]byte(oras.run(t, "manifest", "fetch", "--plain-http", "--descriptor", ref)), &desc); err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != want.Digest {
		t.Fatalf("oras descriptor digest = %s, find says %s", desc.Digest, want.Digest)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal([]byte(oras.run(t, "manifest", "fetch", "--plain-http", ref)), &m); err != nil {
		t.Fatal(err)
	}
	for _, l := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		out := filepath.Join(t.TempDir(), "blob")
		// oras verifies the digest and size of what it fetches; check again.
		oras.run(t, "blob", "fetch", "--plain-http", "--output", out, c.Addr+"/windowsservercore@"+l.Digest.String())
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if "sha256:"+hex.EncodeToString(sum[:]) != l.Digest.String() || int64(len(b)) != l.Size {
			t.Fatalf("blob %s fetched by oras does not match its descriptor", l.Digest)
		}
	}

	// Push an artifact with oras: Find lists images only, so it is not
	// found, while the registry serves it by tag.
	oras.run(t, "login", "--plain-http", "-u", c.User, "-p", c.Password, c.Addr)
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "readme.txt"), []byte("pushed by oras\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pushed := c.Addr + "/oras/hello:1.0.0.0"
	oras.runIn(t, work, "push", "--plain-http", pushed, "readme.txt")
	if code, fr, body := c.find(t, "name=oras/hello&allVersions=true"); code != http.StatusNotFound || len(fr.Images) != 0 {
		t.Fatalf("find of an oras artifact: %d %s, want 404: artifacts are no images", code, body)
	}
	if tags := oras.run(t, "repo", "tags", "--plain-http", c.Addr+"/oras/hello"); strings.TrimSpace(tags) != "1.0.0.0" {
		t.Fatalf("oras repo tags: %q", tags)
	}
	pullDir := t.TempDir()
	oras.run(t, "pull", "--plain-http", "-o", pullDir, pushed)
	if b, err := os.ReadFile(filepath.Join(pullDir, "readme.txt")); err != nil || string(b) != "pushed by oras\n" {
		t.Fatalf("oras pull: %q, %v", b, err)
	}
}

// TestFindSeededCatalog checks the find extension over a seeded catalog with
// every OneGet version option.
func TestFindSeededCatalog(t *testing.T) {
	c := startCatalogd(t, true)

	code, fr, body := c.find(t, "")
	if code != http.StatusOK {
		t.Fatalf("find: %d %s", code, body)
	}
	bases, apps := 0, 0
	for _, e := range fr.Images {
		if e.IsOSImage {
			bases++
			if e.Version != "10.0.14393.0" || e.Publisher != "CN=Microsoft" || !strings.HasPrefix(e.Description, "Container OS Image of Windows Server 2016") {
				t.Errorf("base image %+v", e)
			}
		} else {
			apps++
			if e.Parent == nil || e.Parent.Name != "WindowsServerCore" {
				t.Errorf("application image without WindowsServerCore parent: %+v", e)
			}
		}
		if e.Digest == "" || e.Size <= 0 || e.Created.IsZero() || e.OSVersion == "" {
			t.Errorf("incomplete entry %+v", e)
		}
	}
	if bases != 2 || apps != 16 {
		t.Fatalf("find with no options: %d base and %d application images, want 2 and 16: %v", bases, apps, names(fr))
	}

	for _, tc := range []struct {
		name  string
		query string
		want  []string
	}{
		{"name wildcard", "name=nano*", []string{"NanoServer@10.0.14393.0"}},
		{"name wildcard all versions", "name=nano*&allVersions=true", []string{"NanoServer@10.0.10586.0", "NanoServer@10.0.14393.0"}},
		{"minimum version", "minimumVersion=10.0.14393.0", []string{"NanoServer@10.0.14393.0", "WindowsServerCore@10.0.14393.0"}},
		{"maximum version", "name=windowsserver*&maximumVersion=10.0.10586.0", []string{"WindowsServerCore@10.0.10586.0"}},
		{"required version", "name=WindowsServerCore&requiredVersion=10.0.10586.0", []string{"WindowsServerCore@10.0.10586.0"}},
		{"question mark", "name=microsoft/ii?", []string{"microsoft/iis@1.0.0.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, fr, body := c.find(t, tc.query)
			if code != http.StatusOK || strings.Join(names(fr), " ") != strings.Join(tc.want, " ") {
				t.Fatalf("find %s = %d %v %s, want %v", tc.query, code, names(fr), body, tc.want)
			}
		})
	}
	if code, fr, _ := c.find(t, "allVersions=true"); code != http.StatusOK || len(fr.Images) != 20 {
		t.Fatalf("find allVersions: %d, %d images, want 20", code, len(fr.Images))
	}

	code, _, body = c.find(t, "name=NanoServer&requiredVersion=10.0.99999.0")
	if code != http.StatusNotFound || !strings.Contains(body, "NanoServer") || !strings.Contains(body, "No match was found") {
		t.Fatalf("unknown required version: %d %s", code, body)
	}
	code, _, body = c.find(t, "name=NanoServer&requiredVersion=10.0.14393.0&minimumVersion=10.0.10586.0")
	if code != http.StatusBadRequest || !strings.Contains(body, "RequiredVersion") || !strings.Contains(body, "MinimumVersion") {
		t.Fatalf("RequiredVersion with MinimumVersion: %d %s", code, body)
	}
	var env struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil || len(env.Errors) != 1 || env.Errors[0].Message == "" {
		t.Fatalf("error is not in the OCI envelope: %s", body)
	}
}
