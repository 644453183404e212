package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// dockerCLI runs the real docker CLI against providerd's Docker API.
type dockerCLI struct {
	bin    string
	host   string
	config string
}

// newDockerCLI runs docker with DOCKER_HOST=host: unix:///path/docker.sock
// or tcp://host:port.
func newDockerCLI(t *testing.T, host string) *dockerCLI {
	t.Helper()
	return &dockerCLI{bin: tool(t, "docker"), host: host, config: t.TempDir()}
}

// run runs docker args... and returns its stdout, stderr and exit code.
func (d *dockerCLI) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.host, "DOCKER_CONFIG="+d.config, "DOCKER_CLI_HINTS=false",
		"DOCKER_CONTEXT=", "DOCKER_TLS_VERIFY=", "DOCKER_CERT_PATH=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("docker %s: did not end within 3 minutes", strings.Join(args, " "))
	}
	return stdout.String(), stderr.String(), code
}

func (d *dockerCLI) must(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := d.run(t, args...)
	if code != 0 {
		t.Fatalf("docker %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// rows splits a table the CLI printed into the fields of each line after
// the header; columns are separated by two spaces or more.
func rows(out string) [][]string {
	var res [][]string
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < 2 {
		return nil
	}
	sep := regexp.MustCompile(`\s{2,}`)
	for _, l := range lines[1:] {
		res = append(res, sep.Split(strings.TrimSpace(l), -1))
	}
	return res
}

func wantContains(t *testing.T, what, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Fatalf("%s: no %q in\n%s", what, s, out)
		}
	}
}

// TestDockerSession drives providerd with the real docker CLI through the
// documentation's session: version, search, pull (a parent comes along),
// images, history, tag and the rmi of a tag, create and ps -a, rmi refused
// by a container and by a child, commit, save, rmi and load of the
// committed image, start, stop, rm, rmi by short id,
// an unsupported command that fails at once with the 501 message, and docker
// run, which stops at its attach with a 501 and removes the container it
// created. What docker does is visible through cimage: one store.
func TestDockerSession(t *testing.T) {
	tool(t, "docker") // skips, saying why, without docker
	cat := startCatalogd(t, true)
	p := startProviderd(t, cat.URL(""), "")
	// The default of dockerd's users: the unix socket, whose group is the
	// credential.
	d := newDockerCLI(t, "unix://"+p.DockerSocket())

	out := d.must(t, "version")
	wantContains(t, "docker version", out, "Server: providerd", "API version:", "1.51", "windows/")

	out = d.must(t, "search", "iis")
	wantContains(t, "docker search iis", out, "NAME", "DESCRIPTION", "STARS", "OFFICIAL", "microsoft/iis")
	found := false
	for _, r := range rows(out) {
		if r[0] == "microsoft/iis" && strings.HasPrefix(r[1], "Internet Information Services") && r[len(r)-1] == "[OK]" {
			found = true
		}
	}
	if !found {
		t.Fatalf("docker search iis: no official microsoft/iis row:\n%s", out)
	}
	out = d.must(t, "search", "--limit", "3", "windows")
	if n := len(rows(out)); n != 3 {
		t.Fatalf("docker search --limit 3 windows: %d rows\n%s", n, out)
	}
	if _, errOut, code := d.run(t, "search", "--limit", "101", "windows"); code == 0 || !strings.Contains(errOut, "outside the range") {
		t.Fatalf("search --limit 101: exit %d, %s", code, errOut)
	}

	out = d.must(t, "pull", "nanoserver:10.0.10586.0")
	wantContains(t, "docker pull nanoserver:10.0.10586.0", out,
		"10.0.10586.0: Pulling from library/nanoserver", "Pull complete", "Digest: sha256:",
		"Status: Downloaded newer image for nanoserver:10.0.10586.0", "docker.io/library/nanoserver:10.0.10586.0")
	out = d.must(t, "pull", "nanoserver:10.0.10586.0")
	wantContains(t, "second pull", out, "Status: Image is up to date for nanoserver:10.0.10586.0")

	out = d.must(t, "pull", "microsoft/iis")
	t.Logf("docker pull microsoft/iis:\n%s", out)
	wantContains(t, "docker pull microsoft/iis", out, "latest: Pulling from microsoft/iis", "Status: Downloaded newer image for microsoft/iis:latest")

	out = d.must(t, "images")
	t.Logf("docker images:\n%s", out)
	wantContains(t, "docker images", out, "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")
	ids := map[string]string{}
	for _, r := range rows(out) {
		if len(r) < 5 {
			t.Fatalf("docker images row %q", r)
		}
		ids[r[0]+":"+r[1]] = r[2]
	}
	for _, ref := range []string{"nanoserver:10.0.10586.0", "nanoserver:latest", "windowsservercore:10.0.14393.0", "windowsservercore:latest", "microsoft/iis:1.0.0.0", "microsoft/iis:latest"} {
		if len(ids[ref]) != 12 {
			t.Fatalf("docker images: no row for %s:\n%s", ref, out)
		}
	}
	if len(ids) != 6 || ids["nanoserver:10.0.10586.0"] != ids["nanoserver:latest"] {
		t.Fatalf("docker images: want 6 rows, the two nanoserver tags on one id:\n%s", out)
	}

	out = d.must(t, "history", "microsoft/iis")
	t.Logf("docker history microsoft/iis:\n%s", out)
	hist := rows(out)
	if len(hist) != 2 || hist[0][0] != ids["microsoft/iis:latest"] || hist[1][0] != ids["windowsservercore:latest"] {
		t.Fatalf("docker history microsoft/iis: want iis then its parent:\n%s", out)
	}
	wantContains(t, "docker history microsoft/iis", out, "CREATED BY")
	out = d.must(t, "history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}", "microsoft/iis")
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if id, by, _ := strings.Cut(l, "|"); strings.TrimSpace(by) == "" {
			t.Fatalf("docker history: no CREATED BY for %s:\n%s", id, out)
		}
	}

	out = d.must(t, "image", "inspect", "--format", "{{.Os}} {{.OsVersion}}", "nanoserver:10.0.10586.0")
	if strings.TrimSpace(out) != "windows 10.0.10586.0" {
		t.Fatalf("docker image inspect: %q", out)
	}

	// One store: what docker pulled, cimage lists.
	wantContains(t, "cimage images", mustCimage(t, p, "images"), "NanoServer", "WindowsServerCore", "microsoft/iis")

	// docker tag adds a row on the same id; rmi of that tag only untags.
	d.must(t, "tag", "windowsservercore:latest", "mywsc:base")
	out = d.must(t, "images", "mywsc")
	if r := rows(out); len(r) != 1 || r[0][0] != "mywsc" || r[0][1] != "base" || r[0][2] != ids["windowsservercore:latest"] {
		t.Fatalf("docker images mywsc after docker tag:\n%s", out)
	}
	out = d.must(t, "rmi", "mywsc:base")
	if strings.TrimSpace(out) != "Untagged: mywsc:base" {
		t.Fatalf("docker rmi of a tag: want only Untagged:\n%s", out)
	}

	_, errOut, code := d.run(t, "rmi", "windowsservercore:10.0.14393.0")
	if code == 0 || !strings.Contains(errOut, "conflict: unable to delete "+ids["windowsservercore:latest"]+" (cannot be forced) - image has dependent child images") {
		t.Fatalf("rmi of a parent: exit %d\n%s", code, errOut)
	}

	// A container on nanoserver: ps -a lists it and rmi names it.
	out = d.must(t, "create", "--name", "c1", "nanoserver:10.0.10586.0")
	if id := strings.TrimSpace(out); len(id) != 64 {
		t.Fatalf("docker create: want the container id, got %q", out)
	}
	out = d.must(t, "ps", "-a")
	t.Logf("docker ps -a:\n%s", out)
	wantContains(t, "docker ps -a", out, "CONTAINER ID", "IMAGE", "STATUS", "NAMES")
	if r := rows(out); len(r) != 1 || r[0][1] != "nanoserver:10.0.10586.0" || r[0][len(r[0])-1] != "c1" {
		t.Fatalf("docker ps -a: want one row, c1 on nanoserver:10.0.10586.0:\n%s", out)
	}
	_, errOut, code = d.run(t, "rmi", "nanoserver:10.0.10586.0")
	if code == 0 || !strings.Contains(errOut, "conflict: unable to remove repository reference \"nanoserver:10.0.10586.0\" (must force) - container c1 is using its referenced image "+ids["nanoserver:10.0.10586.0"]) {
		t.Fatalf("rmi of c1's image: exit %d\n%s", code, errOut)
	}

	// docker commit is New-ContainerImage: cimage shows the new image.
	out = d.must(t, "commit", "c1", "demoimage:1.0")
	if !strings.HasPrefix(strings.TrimSpace(out), "sha256:") {
		t.Fatalf("docker commit: want the image id, got %q", out)
	}
	out = mustCimage(t, p, "images", "demoimage")
	t.Logf("cimage images demoimage:\n%s", out)
	// The rows after cimage's header and its line of dashes.
	if r := rows(out); len(r) != 2 || r[1][0] != "demoimage" || r[1][1] != "CN=Docker" || r[1][2] != "1.0.0.0" {
		t.Fatalf("cimage images demoimage: want demoimage 1.0.0.0 by CN=Docker:\n%s", out)
	}
	out = mustCimage(t, p, "images", "--parent", "demoimage")
	wantContains(t, "cimage images --parent demoimage", out, "demoimage", "ParentImage", "(Name = 'NanoServer')", "Version = '10.0.10586.0'")
	out = d.must(t, "history", "--no-trunc", "--format", "{{.CreatedBy}}", "demoimage:1.0")
	if l := strings.Split(strings.TrimSpace(out), "\n"); len(l) != 2 || !strings.Contains(l[0], "c1") || l[1] == "" {
		t.Fatalf("docker history demoimage:1.0: want the commit, then the layer of its parent:\n%s", out)
	}

	// docker save, rmi, load: the image comes back, with its id.
	demoID := ""
	for _, r := range rows(d.must(t, "images", "demoimage")) {
		demoID = r[2]
	}
	tarPath := filepath.Join(t.TempDir(), "x.tar")
	d.must(t, "save", "-o", tarPath, "demoimage:1.0")
	if tags := savedRepoTags(t, tarPath); !slices.Contains(tags, "demoimage:1.0.0.0") {
		t.Fatalf("docker save demoimage:1.0: manifest.json RepoTags %q", tags)
	}
	d.must(t, "rmi", "demoimage:1.0")
	if r := rows(d.must(t, "images", "demoimage")); len(r) != 0 {
		t.Fatalf("docker images demoimage after docker rmi: %q", r)
	}
	out = d.must(t, "load", "-i", tarPath)
	if strings.TrimSpace(out) != "Loaded image: demoimage:1.0.0.0" {
		t.Fatalf("docker load -i x.tar: %q", out)
	}
	out = d.must(t, "images", "demoimage")
	if r := rows(out); len(r) == 0 || r[0][0] != "demoimage" || r[0][2] != demoID || len(demoID) != 12 {
		t.Fatalf("docker images demoimage after docker load: want id %s:\n%s", demoID, out)
	}
	wantContains(t, "cimage images after docker load", mustCimage(t, p, "images", "demoimage"), "demoimage", "1.0.0.0")

	d.must(t, "start", "c1")
	d.must(t, "stop", "c1")
	d.must(t, "rm", "c1")
	if out = d.must(t, "ps", "-a"); len(rows(out)) != 0 {
		t.Fatalf("docker ps -a after docker rm:\n%s", out)
	}
	out = d.must(t, "rmi", "demoimage:1.0")
	wantContains(t, "docker rmi demoimage:1.0", out, "Untagged: demoimage:1.0.0.0", "Deleted: sha256:")

	out = d.must(t, "rmi", ids["nanoserver:10.0.10586.0"])
	wantContains(t, "docker rmi by short id", out, "Untagged: nanoserver:10.0.10586.0", "Untagged: nanoserver:latest", "Deleted: sha256:"+ids["nanoserver:10.0.10586.0"])
	if strings.Contains(mustCimage(t, p, "images"), "NanoServer") {
		t.Fatal("cimage still lists NanoServer after docker rmi")
	}
	out = d.must(t, "rmi", "microsoft/iis:1.0.0.0")
	wantContains(t, "docker rmi by name and tag", out, "Untagged: microsoft/iis:1.0.0.0", "Deleted: sha256:"+ids["microsoft/iis:1.0.0.0"])

	// The other way round: what cimage installs, docker lists.
	mustCimage(t, p, "install", "NanoServer", "--required-version", "10.0.14393.0")
	wantContains(t, "docker images after cimage install", d.must(t, "images"), "nanoserver", "10.0.14393.0")

	start := time.Now()
	_, errOut, code = d.run(t, "network", "ls")
	if code == 0 || !strings.Contains(errOut, "/networks is not supported by providerd") {
		t.Fatalf("docker network ls: exit %d\n%s", code, errOut)
	}
	t.Logf("docker network ls failed in %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(errOut))

	// docker run creates the container, as docker create does, then stops
	// at the attach, which answers 501: the CLI drops the message of a
	// refused upgrade and says "received 501". Nothing starts, and the
	// container the run created is removed.
	start = time.Now()
	_, errOut, code = d.run(t, "run", "--name", "r1", "nanoserver:10.0.14393.0")
	if code == 0 || !strings.Contains(errOut, "received 501") {
		t.Fatalf("docker run: exit %d\n%s", code, errOut)
	}
	t.Logf("docker run failed in %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(errOut))
	if ps := d.must(t, "ps", "-a"); strings.Contains(ps, "r1") {
		t.Fatalf("docker ps -a after docker run: the container r1 is left\n%s", ps)
	}
}

// savedRepoTags reads the RepoTags of the manifest.json of the docker save
// archive at path.
func savedRepoTags(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for range 100000 {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h.Name != "manifest.json" {
			continue
		}
		var entries []struct{ RepoTags []string }
		if err := json.NewDecoder(tr).Decode(&entries); err != nil {
			t.Fatalf("%s: manifest.json: %v", path, err)
		}
		var tags []string
		for _, e := range entries {
			tags = append(tags, e.RepoTags...)
		}
		return tags
	}
	t.Fatalf("%s: no manifest.json", path)
	return nil
}

// TestDockerToken checks that the Docker API asks for the same token as
// API v1, and that the docker CLI sends it from its config's HttpHeaders.
func TestDockerToken(t *testing.T) {
	dockerAddr := freeAddr(t)
	d := newDockerCLI(t, "tcp://"+dockerAddr)
	const token = "docker-token-0123456789abcdef"
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &providerd{Addr: freeAddr(t), Root: filepath.Join(dir, "root"), RunDir: runDir(t)}
	for i := 0; p.Addr == dockerAddr && i < 10; i++ { // freeAddr may give a freed port again
		p.Addr = freeAddr(t)
	}
	if err := os.MkdirAll(p.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	p.args = []string{"serve", "--root", p.Root, "--run-dir", p.RunDir, "--listen", p.Addr, "--docker-listen", dockerAddr,
		"--token-file", tokenFile, "--source", "catalog=http://127.0.0.1:1"}
	startTokenProviderd(t, p)

	_, errOut, code := d.run(t, "images")
	if code == 0 || !strings.Contains(errOut, "needs a bearer token") {
		t.Fatalf("docker images without the token: exit %d\n%s", code, errOut)
	}
	conf := `{"HttpHeaders": {"Authorization": "Bearer ` + token + `"}}`
	if err := os.WriteFile(filepath.Join(d.config, "config.json"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out := d.must(t, "images")
	wantContains(t, "docker images with the token", out, "REPOSITORY")
}

// startTokenProviderd starts p, whose every request needs a token, and
// waits until its Docker API answers (401 without the token).
func startTokenProviderd(t *testing.T, p *providerd) {
	t.Helper()
	logf, err := os.Create(filepath.Join(p.Root, "..", "providerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	p.log = logf
	p.cmd = exec.Command(filepath.Join(binDir, "providerd"), p.args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(t) })
	waitAnswer(t, p.URL("/healthz"))
}

// waitAnswer waits up to 30 s for url to answer anything over HTTP.
func waitAnswer(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer within 30 s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDockerRemoteTLS runs the docker CLI against the Docker API in remote
// mode: TLS and a token. With the CA and the token header from the docker
// config, docker works; without the header, it gets the 401 message.
func TestDockerRemoteTLS(t *testing.T) {
	dockerAddr := freeAddr(t)
	d := newDockerCLI(t, "tcp://"+dockerAddr)
	const token = "docker-tls-token-0123456789abcdef"
	dir := t.TempDir()
	certFile, keyFile, _ := selfSignedCert(t, t.TempDir()) // not in the docker config directory
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &providerd{Addr: freeAddr(t), Root: filepath.Join(dir, "root"), RunDir: runDir(t)}
	for i := 0; p.Addr == dockerAddr && i < 10; i++ { // freeAddr may give a freed port again
		p.Addr = freeAddr(t)
	}
	if err := os.MkdirAll(p.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	p.args = []string{"serve", "--root", p.Root, "--run-dir", p.RunDir, "--listen", p.Addr, "--docker-listen", dockerAddr,
		"--tls-cert", certFile, "--tls-key", keyFile, "--token-file", tokenFile, "--source", "catalog=http://127.0.0.1:1"}
	startTokenProviderd(t, p)
	waitAnswer(t, "http://"+dockerAddr+"/_ping") // the TLS listener answers plain HTTP with a 400

	tlsArgs := []string{"--tlsverify", "--tlscacert", certFile, "-H", "tcp://" + dockerAddr}
	_, errOut, code := d.run(t, append(tlsArgs, "images")...)
	if code == 0 || !strings.Contains(errOut, "needs a bearer token") {
		t.Fatalf("docker images over TLS without the token: exit %d\n%s", code, errOut)
	}
	conf := `{"HttpHeaders": {"Authorization": "Bearer ` + token + `"}}`
	if err := os.WriteFile(filepath.Join(d.config, "config.json"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out := d.must(t, append(tlsArgs, "images")...)
	wantContains(t, "docker images over TLS with the token", out, "REPOSITORY", "TAG", "IMAGE ID")
	out = d.must(t, append(tlsArgs, "version", "--format", "{{.Server.APIVersion}}")...)
	if strings.TrimSpace(out) != "1.51" {
		t.Fatalf("docker version over TLS: %q", out)
	}
	// Without TLS, the client gets no answer it takes for the daemon's.
	if _, _, code := d.run(t, "-H", "tcp://"+dockerAddr, "images"); code == 0 {
		t.Fatal("docker images over plain HTTP to the TLS listener succeeded")
	}
}

// referenceSearch is the NAME column of the reference's `docker search *`.
var referenceSearch = []string{
	"microsoft/aspnet", "microsoft/django", "microsoft/dotnet35", "microsoft/golang",
	"microsoft/httpd", "microsoft/iis", "microsoft/mongodb", "microsoft/mysql",
	"microsoft/nginx", "microsoft/node", "microsoft/php", "microsoft/python",
	"microsoft/rails", "microsoft/redis", "microsoft/ruby", "microsoft/sqlite",
}

// firstColumn is the first field of each row of a table the CLI printed.
func firstColumn(out string) []string {
	var names []string
	for _, r := range rows(out) {
		names = append(names, r[0])
	}
	return names
}

// TestDockerSemantics drives providerd with the real docker CLI where a
// docker user expects the daemon's semantics: search with the wildcards
// of the reference's session, inspect of a container by name, names
// before id prefixes (which need 4 hex, as in cimage), docker cp into a
// container and the commit that carries the files, rmi -f of an image
// that a container uses, and a docker run that removes the container it
// could not run.
func TestDockerSemantics(t *testing.T) {
	tool(t, "docker") // skips, saying why, without docker
	cat := startCatalogd(t, true)
	p := startProviderd(t, cat.URL(""), "")
	d := newDockerCLI(t, "unix://"+p.DockerSocket())

	// docker search '*' lists the reference's 16 images, in its order,
	// then the two OS images that the catalog serves too.
	out := d.must(t, "search", "*")
	t.Logf("docker search '*':\n%s", out)
	names := firstColumn(out)
	if len(names) != 18 || !slices.Equal(names[:16], referenceSearch) || !slices.Equal(names[16:], []string{"nanoserver", "windowsservercore"}) {
		t.Fatalf("docker search '*': %q", names)
	}
	if names = firstColumn(d.must(t, "search", "microsoft/*")); !slices.Equal(names, referenceSearch) {
		t.Fatalf("docker search 'microsoft/*': %q", names)
	}
	if out = d.must(t, "search", "--format", "{{.Name}}", "microsoft/?is"); strings.TrimSpace(out) != "microsoft/iis" {
		t.Fatalf("docker search 'microsoft/?is': %q", out)
	}
	if names = firstColumn(d.must(t, "search", "nothing*")); len(names) != 0 {
		t.Fatalf("docker search 'nothing*': %q", names)
	}

	// docker inspect c1 and docker container inspect c1 show the container.
	d.must(t, "pull", "nanoserver:10.0.10586.0")
	imageID := strings.TrimSpace(d.must(t, "image", "inspect", "--format", "{{.Id}}", "nanoserver:10.0.10586.0"))
	before := time.Now().Add(-time.Minute)
	id := strings.TrimSpace(d.must(t, "create", "--name", "c1", "nanoserver:10.0.10586.0"))
	for _, args := range [][]string{{"inspect", "c1"}, {"container", "inspect", "c1"}, {"inspect", id[:4]}} {
		out := d.must(t, args...)
		var got []struct {
			ID      string `json:"Id"`
			Name    string
			Image   string
			Created time.Time
			State   struct{ Status string }
			Config  struct{ Image string }
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if len(got) != 1 || got[0].ID != id || got[0].Name != "/c1" || got[0].Image != imageID || got[0].State.Status != "created" ||
			got[0].Config.Image != "nanoserver:10.0.10586.0" || got[0].Created.Before(before) || got[0].Created.After(time.Now()) {
			t.Fatalf("docker %s: %+v", strings.Join(args, " "), got)
		}
	}
	if out = d.must(t, "inspect", "--format", "{{.Name}} {{.State.Status}} {{.Config.Image}}", "c1"); strings.TrimSpace(out) != "/c1 created nanoserver:10.0.10586.0" {
		t.Fatalf("docker inspect --format c1: %q", out)
	}

	// Names first: a container named like the start of the image's id is
	// the container, and once it is gone the name is no image either.
	hex := strings.TrimPrefix(imageID, "sha256:")
	d.must(t, "create", "--name", hex[:2], "nanoserver:10.0.10586.0")
	if out = d.must(t, "inspect", "--format", "{{.Name}}", hex[:2]); strings.TrimSpace(out) != "/"+hex[:2] {
		t.Fatalf("docker inspect %s, a container's name: %q", hex[:2], out)
	}
	d.must(t, "rm", hex[:2])
	if _, errOut, code := d.run(t, "inspect", hex[:2]); code == 0 || !strings.Contains(strings.ToLower(errOut), "no such object") {
		t.Fatalf("docker inspect %s, 2 hex of an image id: exit %d\n%s", hex[:2], code, errOut)
	}
	if _, errOut, code := d.run(t, "image", "inspect", hex[:3]); code == 0 || !strings.Contains(errOut, "No such image") {
		t.Fatalf("docker image inspect %s, 3 hex: exit %d\n%s", hex[:3], code, errOut)
	}
	if out = d.must(t, "image", "inspect", "--format", "{{.Id}}", hex[:4]); strings.TrimSpace(out) != imageID {
		t.Fatalf("docker image inspect %s, 4 hex: %q", hex[:4], out)
	}

	// docker cp puts files into c1, and docker commit carries them.
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "site"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"index.html": "<h1>Hello from docker cp</h1>\n", "site/a.txt": "a\n"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d.must(t, "cp", filepath.Join(src, "index.html"), "c1:/inetpub/wwwroot/index.html") // a new file
	d.must(t, "cp", filepath.Join(src, "site"), "c1:/inetpub/site")                     // a new directory
	d.must(t, "cp", filepath.Join(src, "index.html"), "c1:/inetpub/")                   // into a directory
	if _, errOut, code := d.run(t, "cp", filepath.Join(src, "index.html"), "nothere:/x"); code == 0 || !strings.Contains(errOut, "No such container: nothere") {
		t.Fatalf("docker cp to no container: exit %d\n%s", code, errOut)
	}
	d.must(t, "commit", "c1", "withfile:1.0")
	tarPath := filepath.Join(t.TempDir(), "withfile.tar")
	d.must(t, "save", "-o", tarPath, "withfile:1.0")
	files := savedLayerFiles(t, tarPath)
	for name, body := range map[string]string{
		"inetpub/wwwroot/index.html": "<h1>Hello from docker cp</h1>\n",
		"inetpub/site/a.txt":         "a\n",
		"inetpub/index.html":         "<h1>Hello from docker cp</h1>\n",
	} {
		if files[name] != body {
			t.Fatalf("the committed image: %s is %q, want %q; files %q", name, files[name], body, slices.Sorted(maps.Keys(files)))
		}
	}
	wantContains(t, "cimage images withfile", mustCimage(t, p, "images", "withfile"), "withfile", "1.0.0.0")

	// rmi -f of the image that c1 uses untags it, and c1 keeps it.
	d.must(t, "rmi", "withfile:1.0") // a child cannot be forced: it goes first
	_, errOut, code := d.run(t, "rmi", "nanoserver:10.0.10586.0")
	if code == 0 || !strings.Contains(errOut, `unable to remove repository reference "nanoserver:10.0.10586.0" (must force) - container c1 is using its referenced image `+hex[:12]) {
		t.Fatalf("docker rmi of c1's image: exit %d\n%s", code, errOut)
	}
	out = d.must(t, "rmi", "-f", "nanoserver:10.0.10586.0")
	t.Logf("docker rmi -f nanoserver:10.0.10586.0:\n%s", out)
	wantContains(t, "docker rmi -f", out, "Untagged: nanoserver:10.0.10586.0", "Untagged: nanoserver:latest")
	if strings.Contains(out, "Deleted") {
		t.Fatalf("docker rmi -f deleted the image of c1:\n%s", out)
	}
	if r := rows(d.must(t, "images", "--filter", "dangling=true")); len(r) != 1 || r[0][0] != "<none>" || r[0][2] != hex[:12] {
		t.Fatalf("docker images --filter dangling=true: %q", r)
	}
	wantContains(t, "cimage images after docker rmi -f", mustCimage(t, p, "images"), "NanoServer", "10.0.10586.0")
	if _, errOut, code = d.run(t, "rmi", "-f", hex[:12]); code == 0 || !strings.Contains(errOut, "(cannot be forced) - image is being used by stopped container c1") {
		t.Fatalf("docker rmi -f of the untagged image: exit %d\n%s", code, errOut)
	}
	d.must(t, "pull", "nanoserver:10.0.10586.0") // names it again
	if out = d.must(t, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "nanoserver"); !strings.Contains(out, "nanoserver:10.0.10586.0 "+hex[:12]) {
		t.Fatalf("docker images after the pull: %q", out)
	}
	d.must(t, "start", "c1")
	if _, errOut, code = d.run(t, "rmi", "-f", hex[:12]); code == 0 || !strings.Contains(errOut, "(cannot be forced) - image is being used by running container c1") {
		t.Fatalf("docker rmi -f by id of the image of a running container: exit %d\n%s", code, errOut)
	}

	// docker run cannot run: it removes the container it created; docker
	// start -a of a container that docker create made keeps it.
	_, errOut, code = d.run(t, "run", "--name", "r1", "nanoserver:10.0.10586.0")
	if code == 0 || !strings.Contains(errOut, "received 501") {
		t.Fatalf("docker run: exit %d\n%s", code, errOut)
	}
	d.must(t, "create", "--name", "c2", "nanoserver:10.0.10586.0")
	if _, errOut, code = d.run(t, "start", "-a", "c2"); code == 0 {
		t.Fatalf("docker start -a c2 succeeded\n%s", errOut)
	}
	out = d.must(t, "ps", "-a", "--format", "{{.Names}} {{.State}}")
	if got := strings.Fields(out); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"c1", "c2", "created", "running"}) {
		t.Fatalf("docker ps -a after docker run and docker start -a: %q", out)
	}

	d.must(t, "stop", "c1")
	d.must(t, "rm", "c1", "c2")
	out = d.must(t, "rmi", "nanoserver:10.0.10586.0")
	wantContains(t, "docker rmi once the containers are gone", out, "Deleted: "+imageID)
}

// savedLayerFiles reads the archive at path, as docker save wrote it, and
// returns the regular files of its layers (the blobs that are tars,
// gzipped or not) with their content.
func savedLayerFiles(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	tr := tar.NewReader(f)
	for range 100000 {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !strings.HasPrefix(h.Name, "blobs/sha256/") || h.Size == 0 {
			continue
		}
		blob, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = bytes.NewReader(blob)
		if zr, err := gzip.NewReader(bytes.NewReader(blob)); err == nil {
			r = zr
		}
		lr := tar.NewReader(r)
		for range 100000 {
			lh, err := lr.Next()
			if err != nil {
				break // the end of a layer, or a blob that is no tar
			}
			if lh.Typeflag != tar.TypeReg {
				continue
			}
			body, err := io.ReadAll(lr)
			if err != nil {
				break
			}
			out[strings.TrimPrefix(lh.Name, "./")] = string(body)
		}
	}
	t.Fatalf("%s: more than 100000 entries", path)
	return nil
}
