package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// newSkopeo is skopeo with a home and an auth file of its own, and no
// signature policy to set up.
func newSkopeo(t *testing.T) *client {
	t.Helper()
	c := newClient(t, "skopeo")
	home := t.TempDir()
	c.env = append(c.env, "REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"), "XDG_RUNTIME_DIR="+home)
	return c
}

// runFailing runs the client and fails the test unless it exits with an
// error; it returns the standard error.
func (c *client) runFailing(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Env = &stdout, &stderr, c.env
	if err := cmd.Run(); err == nil || ctx.Err() != nil {
		t.Fatalf("%s %s: %v, want a refusal\nstdout: %s\nstderr: %s", filepath.Base(c.bin), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stderr.String()
}

// manifestDigest is the digest catalogd answers for repo:ref with a HEAD
// that accepts an image manifest or an index, "" with the status when it
// has none.
func manifestDigest(t *testing.T, c *catalogd, repo, ref string) (string, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, c.URL("/v2/"+repo+"/manifests/"+ref), nil)
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest+", "+ocispec.MediaTypeImageIndex)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", resp.StatusCode
	}
	return resp.Header.Get("Docker-Content-Digest"), resp.StatusCode
}

// TestSkopeoPush drives the real skopeo, crane, oras and docker CLI
// against catalogd with its default settings: the ping answers 401 with a
// Bearer challenge of catalogd's own token endpoint, which
// containers/image and docker's registry client need before they send
// credentials. skopeo then pushes with --dest-creds, copies an image index
// with --all and deletes with --creds, and is refused without credentials
// or with wrong ones; skopeo login checks the password; skopeo, crane,
// oras and the docker CLI still pull anonymously, and the docker CLI
// pushes an index with the credentials of its config file.
func TestSkopeoPush(t *testing.T) {
	skopeo := newSkopeo(t)
	crane := newClient(t, "crane")
	c := startCatalogdSeeded(t, []string{"--base-layer-size", "64KiB", "--app-layer-size", "4KiB"})
	if c.Password == "" {
		t.Fatal("catalogd did not create auth/admin-password on first start")
	}
	creds := c.User + ":" + c.Password
	reg := "docker://" + c.Addr + "/"

	// The ping challenges; the probe does not.
	resp, err := http.Get(c.URL("/v2/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := `Bearer realm="http://` + c.Addr + `/token",service="catalogd"`
	if got := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || got != want {
		t.Fatalf("GET /v2/ without credentials: %d, WWW-Authenticate %q; want 401 and %q", resp.StatusCode, got, want)
	}
	if resp, err := http.Get(c.URL("/healthz")); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// Anonymous pulls by skopeo.
	nano, _ := manifestDigest(t, c, "nanoserver", "10.0.14393.0")
	var inspected struct{ Digest string }
	if err := json.Unmarshal([]byte(skopeo.run(t, "inspect", "--tls-verify=false", reg+"nanoserver:10.0.14393.0")), &inspected); err != nil {
		t.Fatal(err)
	}
	if nano == "" || inspected.Digest != nano {
		t.Fatalf("skopeo inspect: digest %q, catalogd %q", inspected.Digest, nano)
	}
	layout := filepath.Join(t.TempDir(), "iis")
	skopeo.run(t, "--insecure-policy", "copy", "--src-tls-verify=false", reg+"microsoft/iis:1.0.0.0", "oci:"+layout+":iis")
	iis, _ := manifestDigest(t, c, "microsoft/iis", "1.0.0.0")

	// Refused: no credentials, then a wrong password; nothing is stored.
	errOut := skopeo.runFailing(t, "--insecure-policy", "copy", "--dest-tls-verify=false", "oci:"+layout+":iis", reg+"skopeo/iis:1.0.0.0")
	t.Logf("skopeo copy without credentials: %s", lastLine(errOut))
	errOut = skopeo.runFailing(t, "--insecure-policy", "copy", "--dest-tls-verify=false", "--dest-creds", c.User+":wrong",
		"oci:"+layout+":iis", reg+"skopeo/iis:1.0.0.0")
	t.Logf("skopeo copy with a wrong password: %s", lastLine(errOut))
	if d, status := manifestDigest(t, c, "skopeo/iis", "1.0.0.0"); status != http.StatusNotFound {
		t.Fatalf("a refused push left skopeo/iis:1.0.0.0 (%d, %s)", status, d)
	}

	// skopeo copy --dest-creds pushes, byte for byte.
	skopeo.run(t, "--insecure-policy", "copy", "--dest-tls-verify=false", "--dest-creds", creds, "oci:"+layout+":iis", reg+"skopeo/iis:1.0.0.0")
	if d, _ := manifestDigest(t, c, "skopeo/iis", "1.0.0.0"); d != iis {
		t.Fatalf("skopeo/iis:1.0.0.0 is %q after the push, want %q", d, iis)
	}
	if d := strings.TrimSpace(crane.run(t, "digest", "--insecure", c.Addr+"/skopeo/iis:1.0.0.0")); d != iis {
		t.Fatalf("crane digest of the pushed image %q, want %q", d, iis)
	}

	// An index of the two NanoServer images, pushed by crane with the
	// admin's login, copied with --all.
	crane.run(t, "auth", "login", c.Addr, "-u", c.User, "-p", c.Password)
	crane.run(t, "index", "append", "--insecure", "-m", c.Addr+"/nanoserver:10.0.14393.0", "-m", c.Addr+"/nanoserver:10.0.10586.0",
		"-t", c.Addr+"/skopeo/nano-index:1")
	index, _ := manifestDigest(t, c, "skopeo/nano-index", "1")
	if index == "" {
		t.Fatal("crane index append pushed no index")
	}
	skopeo.run(t, "--insecure-policy", "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false", "--dest-creds", creds,
		reg+"skopeo/nano-index:1", reg+"skopeo/nano-copy:1")
	// skopeo writes the index anew (its JSON, not its children), so the
	// copy is compared by its children.
	children := func(repo string) []string {
		var idx ocispec.Index
		if err := json.Unmarshal([]byte(crane.run(t, "manifest", "--insecure", c.Addr+"/"+repo+":1")), &idx); err != nil {
			t.Fatal(err)
		}
		var ds []string
		for _, m := range idx.Manifests {
			ds = append(ds, m.Digest.String())
		}
		return ds
	}
	src, dst := children("skopeo/nano-index"), children("skopeo/nano-copy")
	if len(src) != 2 || !slices.Equal(src, dst) {
		t.Fatalf("skopeo copy --all: the index lists %q, the copy %q", src, dst)
	}
	for _, d := range dst {
		if got, status := manifestDigest(t, c, "skopeo/nano-copy", d); got != d {
			t.Fatalf("skopeo copy --all did not copy the child %s (%d)", d, status)
		}
	}
	copied, _ := manifestDigest(t, c, "skopeo/nano-copy", "1")

	// skopeo login checks the password against the token endpoint.
	skopeo.runFailing(t, "login", "--tls-verify=false", "-u", c.User, "-p", "wrong", c.Addr)
	if out := skopeo.run(t, "login", "--tls-verify=false", "-u", c.User, "-p", c.Password, c.Addr); !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("skopeo login: %q", out)
	}
	skopeo.run(t, "logout", c.Addr)

	// skopeo delete: refused without credentials, done with them.
	skopeo.runFailing(t, "delete", "--tls-verify=false", reg+"skopeo/iis:1.0.0.0")
	if d, _ := manifestDigest(t, c, "skopeo/iis", "1.0.0.0"); d != iis {
		t.Fatal("a refused delete removed skopeo/iis:1.0.0.0")
	}
	skopeo.run(t, "delete", "--tls-verify=false", "--creds", creds, reg+"skopeo/iis:1.0.0.0")
	for _, ref := range []string{"1.0.0.0", iis} {
		if _, status := manifestDigest(t, c, "skopeo/iis", ref); status != http.StatusNotFound {
			t.Fatalf("skopeo/iis %s after skopeo delete: %d, want 404", ref, status)
		}
	}
	skopeo.run(t, "delete", "--tls-verify=false", "--creds", creds, reg+"skopeo/nano-copy:1")
	if _, status := manifestDigest(t, c, "skopeo/nano-copy", copied); status != http.StatusNotFound {
		t.Fatalf("the copied index after skopeo delete: %d, want 404", status)
	}

	// Anonymous pulls by crane, oras and the docker CLI, each with a
	// configuration of its own that holds no credentials.
	anonCrane := newClient(t, "crane")
	if d := strings.TrimSpace(anonCrane.run(t, "digest", "--insecure", c.Addr+"/nanoserver:10.0.14393.0")); d != nano {
		t.Fatalf("anonymous crane digest %q, want %q", d, nano)
	}
	pulled := filepath.Join(t.TempDir(), "nano-oci")
	anonCrane.run(t, "pull", "--insecure", "--format", "oci", c.Addr+"/nanoserver:10.0.14393.0", pulled)
	oras := newClient(t, "oras")
	if d := strings.TrimSpace(oras.run(t, "resolve", "--plain-http", c.Addr+"/nanoserver:10.0.14393.0")); d != nano {
		t.Fatalf("anonymous oras resolve: digest %q, want %q", d, nano)
	}
	oras.runIn(t, t.TempDir(), "pull", "--plain-http", c.Addr+"/nanoserver:10.0.14393.0")

	docker := newDockerCLI(t, "tcp://127.0.0.1:1") // no daemon: docker manifest talks to the registry itself
	var verbose struct{ Descriptor ocispec.Descriptor }
	if err := json.Unmarshal([]byte(docker.must(t, "manifest", "inspect", "--verbose", "--insecure", c.Addr+"/nanoserver:10.0.14393.0")), &verbose); err != nil {
		t.Fatal(err)
	}
	if d := verbose.Descriptor.Digest.String(); d != nano {
		t.Fatalf("anonymous docker manifest inspect: digest %q, want %q", d, nano)
	}
	// docker's registry client, as the daemon's, sends the credentials of
	// its config file only after the challenge of the ping.
	auth := base64.StdEncoding.EncodeToString([]byte(creds))
	if err := os.WriteFile(filepath.Join(docker.config, "config.json"),
		[]byte(`{"auths":{"`+c.Addr+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	docker.must(t, "manifest", "create", "--insecure", c.Addr+"/docker/nano-list:1", c.Addr+"/nanoserver:10.0.14393.0", c.Addr+"/nanoserver:10.0.10586.0")
	docker.must(t, "manifest", "push", "--insecure", c.Addr+"/docker/nano-list:1")
	if d, status := manifestDigest(t, c, "docker/nano-list", "1"); d == "" {
		t.Fatalf("docker manifest push stored no list (%d)", status)
	}
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
