package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	dockerserver "github.com/containerprovider/containerprovider/server/docker"
	providerserver "github.com/containerprovider/containerprovider/server/provider"
)

// The unprivileged user of these tests, and the group given to providerd
// as --socket-group. Neither needs to exist in /etc/passwd or /etc/group:
// setpriv sets the ids themselves.
const (
	nobodyUID   = 65534
	socketGID   = 4242
	noGroupsArg = "--clear-groups"
)

// needRootAndSetpriv skips a test that drops root's rights to an
// unprivileged user, saying why, when it cannot.
func needRootAndSetpriv(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: providerd runs as root and the test calls it as uid 65534 through setpriv")
	}
	p, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (Debian's util-linux) is not installed")
	}
	return p
}

// asNobody runs name args as uid and gid 65534, with the socket group as
// its only supplementary group when withGroup, else with none. It returns
// the combined output and the exit code; it fails the test if the command
// does not end within a minute.
func asNobody(t *testing.T, withGroup bool, env []string, name string, args ...string) (string, int) {
	t.Helper()
	setpriv := needRootAndSetpriv(t)
	groups := noGroupsArg
	if withGroup {
		groups = fmt.Sprintf("--groups=%d", socketGID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	full := append([]string{fmt.Sprintf("--reuid=%d", nobodyUID), fmt.Sprintf("--regid=%d", nobodyUID), groups, "--", name}, args...)
	cmd := exec.CommandContext(ctx, setpriv, full...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}, env...)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %v as uid %d: did not end within a minute", name, args, nobodyUID)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v as uid %d: %v", name, args, nobodyUID, err)
	}
	return string(out), code
}

// publicDir is a fresh directory that every user may search (t.TempDir's
// are for their owner alone), owned by owner with mode perm.
func publicDir(t *testing.T, owner int, perm os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cp-public-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, owner, owner); err != nil {
		t.Fatal(err)
	}
	return dir
}

// publicCimage is a copy of cimage that every user may run: the binaries'
// directory may be private to root.
func publicCimage(t *testing.T) string {
	t.Helper()
	dir := publicDir(t, 0, 0o755)
	src, err := os.Open(filepath.Join(binDir, "cimage"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := filepath.Join(dir, "cimage")
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, src); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// routeVars matches the variables of a route path: {name}, {name:regexp}.
var routeVars = regexp.MustCompile(`\{[^}]+\}`)

// TestNoCredentialNoAccess: as an unprivileged local user, with no
// credential, every route of API v1 and of the Docker API, /healthz and an
// unknown path included, answers 401 on both TCP listeners, with no token
// and with a wrong one; the unix sockets refuse the connection itself. A
// member of the socket group is served on the sockets.
func TestNoCredentialNoAccess(t *testing.T) {
	needRootAndSetpriv(t)
	curl := tool(t, "curl")
	cat := startCatalogd(t, true)
	dockerAddr := freeAddr(t)
	p := startProviderd(t, cat.URL(""), "", "--docker-listen", dockerAddr, "--socket-group", fmt.Sprint(socketGID))

	type probe struct{ method, url string }
	var probes []probe
	for _, r := range providerserver.Routes() {
		for _, m := range r.Methods {
			probes = append(probes, probe{m, p.URL(routeVars.ReplaceAllString(r.Path, "x"))})
		}
	}
	probes = append(probes, probe{"GET", p.URL("/no/such/route")})
	for _, r := range dockerserver.Routes() {
		for _, m := range r.Methods {
			path := routeVars.ReplaceAllString(r.Path, "x")
			probes = append(probes, probe{m, "http://" + dockerAddr + path}, probe{m, "http://" + dockerAddr + "/v1.50" + path})
		}
	}
	probes = append(probes, probe{"GET", "http://" + dockerAddr + "/no/such/route"})
	if len(probes) < 60 {
		t.Fatalf("only %d probes: the route tables look empty", len(probes))
	}
	// One curl for all the probes of one header: -w prints each status.
	for _, auth := range []string{"", "Authorization: Bearer wrong-token-0123456789abcdef", "Authorization: Basic " + p.Token(t)} {
		args := []string{"-s", "-o", "/dev/null", "--max-time", "10"}
		if auth != "" {
			args = append(args, "-H", auth)
		}
		for i, pr := range probes {
			if i > 0 {
				args = append(args, "--next", "-s", "-o", "/dev/null", "--max-time", "10")
				if auth != "" {
					args = append(args, "-H", auth)
				}
			}
			method := []string{"-X", pr.method}
			if pr.method == "HEAD" {
				method = []string{"--head"} // -X HEAD would wait for a body
			}
			args = append(args, method...)
			args = append(args, "-w", pr.method+" "+pr.url+" %{http_code}\n", pr.url)
		}
		out, code := asNobody(t, false, nil, curl, args...)
		if code != 0 {
			t.Fatalf("curl as uid %d: exit %d\n%s", nobodyUID, code, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != len(probes) {
			t.Fatalf("%d answers for %d probes:\n%s", len(lines), len(probes), out)
		}
		for _, l := range lines {
			if !strings.HasSuffix(l, " 401") {
				t.Errorf("with %q: %s, want 401", auth, l)
			}
		}
	}
	t.Logf("%d routes and methods, on 2 TCP listeners, with 3 kinds of missing credential: all 401", len(probes))

	// The sockets: no connection without the group, served with it.
	for _, sock := range []string{p.Socket(), p.DockerSocket()} {
		out, code := asNobody(t, false, nil, curl, "-sS", "--max-time", "10", "--unix-socket", sock, "http://providerd/_ping")
		if code != 7 || !strings.Contains(out, "Permission denied") && !strings.Contains(out, "Couldn't connect") {
			t.Errorf("%s without the socket group: curl exit %d (want 7, no connection):\n%s", sock, code, out)
		}
		fi, err := os.Stat(sock)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o660 || st.Gid != socketGID || st.Uid != 0 {
			t.Errorf("%s: mode %v, owner %d:%d; want 0660 root:%d", sock, fi.Mode().Perm(), st.Uid, st.Gid, socketGID)
		}
	}
	for sock, path := range map[string]string{p.Socket(): "/healthz", p.DockerSocket(): "/_ping"} {
		out, code := asNobody(t, true, nil, curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--unix-socket", sock, "http://providerd"+path)
		if code != 0 || out != "200" {
			t.Errorf("%s%s as a member of the socket group: curl exit %d, %q; want 200", sock, path, code, out)
		}
	}
}

// TestHostPathsWithCallerRights: a path on the daemon's host is opened with
// the rights of the user of the socket. A save to a file or directory the
// user cannot write is refused and the file is unchanged; a save the user
// may make gives a file of the user's, mode 0600; a load from a file the
// user cannot read gets the same error as a missing file; a FIFO is refused
// at once while a remove runs beside it; over TCP no host path is opened.
func TestHostPathsWithCallerRights(t *testing.T) {
	needRootAndSetpriv(t)
	cimageBin := publicCimage(t)
	cat := startCatalogd(t, true)
	p := startProviderd(t, cat.URL(""), "", "--socket-group", fmt.Sprint(socketGID))
	mustCimage(t, p, "install", "NanoServer", "--required-version", "10.0.10586.0")
	env := []string{"CIMAGE_ENDPOINT=unix://" + p.Socket()}
	nobody := func(args ...string) (string, int) {
		t.Helper()
		return asNobody(t, true, env, cimageBin, args...)
	}

	rootDir := publicDir(t, 0, 0o755)
	target := filepath.Join(rootDir, "passwd")
	const secret = "root:x:0:0:root:/root:/bin/bash\n"
	if err := os.WriteFile(target, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	unchanged := func(what string) {
		t.Helper()
		fi, err := os.Stat(target)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		b, _ := os.ReadFile(target)
		st := fi.Sys().(*syscall.Stat_t)
		if string(b) != secret || fi.Mode().Perm() != 0o600 || st.Uid != 0 {
			t.Fatalf("%s: %s changed: mode %v, uid %d, %d bytes", what, target, fi.Mode().Perm(), st.Uid, len(b))
		}
		if ents, _ := os.ReadDir(rootDir); len(ents) != 1 {
			t.Fatalf("%s: %s holds %d entries, want only passwd", what, rootDir, len(ents))
		}
	}
	for _, args := range [][]string{
		{"save", "NanoServer", "--path", target, "--remote-path", "--force"},
		{"save", "NanoServer", "--path", target, "--remote-path"},
		{"save", "NanoServer", "--path", rootDir + "/", "--remote-path"},
		{"save", "NanoServer", "--path", filepath.Join(rootDir, "new", "dir") + "/", "--remote-path", "--force"},
	} {
		out, code := nobody(args...)
		if code == 0 {
			t.Fatalf("cimage %s as uid %d: exit 0\n%s", strings.Join(args, " "), nobodyUID, out)
		}
		unchanged("cimage " + strings.Join(args, " "))
	}

	own := publicDir(t, nobodyUID, 0o755)
	out, code := nobody("save", "NanoServer", "--path", own+"/", "--remote-path")
	if code != 0 {
		t.Fatalf("save into the user's own directory: exit %d\n%s", code, out)
	}
	saved := filepath.Join(own, "NanoServer-10-0-10586-0.tar")
	fi, err := os.Stat(saved)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != nobodyUID || st.Gid != nobodyUID || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved file: mode %v, owner %d:%d; want 0600 %d:%d", fi.Mode().Perm(), st.Uid, st.Gid, nobodyUID, nobodyUID)
	}

	// A valid archive that only root may read, and a missing file: one
	// error, the path aside.
	private := filepath.Join(rootDir, "private.tar")
	if err := os.Rename(saved, private); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(private, 0, 0); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(rootDir, "missing.tar")
	outPrivate, codePrivate := nobody("install", "--path", private, "--remote-path")
	outMissing, codeMissing := nobody("install", "--path", missing, "--remote-path")
	if codePrivate == 0 || codePrivate != codeMissing ||
		strings.ReplaceAll(outPrivate, private, "PATH") != strings.ReplaceAll(outMissing, missing, "PATH") {
		t.Fatalf("unreadable and missing archives answer differently:\n exit %d: %s\n exit %d: %s", codePrivate, outPrivate, codeMissing, outMissing)
	}
	t.Logf("unreadable and missing: exit %d, %s", codePrivate, strings.TrimSpace(outMissing))
	// Root may read it, and it installs.
	mustCimage(t, p, "install", "--path", private, "--remote-path")

	// A FIFO: refused at once, and a remove beside it finishes.
	fifo := filepath.Join(own, "fifo.tar")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	type result struct {
		out  string
		code int
		took time.Duration
	}
	loaded := make(chan result, 1)
	start := time.Now()
	go func() {
		out, code := asNobody(t, true, env, cimageBin, "install", "--path", fifo, "--remote-path")
		loaded <- result{out, code, time.Since(start)}
	}()
	removeStart := time.Now()
	mustCimage(t, p, "remove", "NanoServer")
	removeTook := time.Since(removeStart)
	r := <-loaded
	if r.code == 0 || !strings.Contains(r.out, "not a regular file") || r.took > 10*time.Second {
		t.Fatalf("install from a FIFO: exit %d after %v\n%s", r.code, r.took, r.out)
	}
	if removeTook > 10*time.Second {
		t.Fatalf("the remove beside the FIFO took %v", removeTook)
	}
	t.Logf("FIFO refused in %v; the remove beside it took %v", r.took.Round(time.Millisecond), removeTook.Round(time.Millisecond))

	// Over TCP, with the token, no host path.
	tcpOut, tcpCode := cimageTCP(t, p, "install", "--path", private, "--remote-path")
	if tcpCode == 0 || !strings.Contains(tcpOut, "unix socket") {
		t.Fatalf("install --remote-path over TCP: exit %d\n%s", tcpCode, tcpOut)
	}
}

// cimageTCP runs cimage against p's TCP listener with its token file.
func cimageTCP(t *testing.T, p *providerd, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "cimage"), args...)
	cmd.Env = append(os.Environ(), "CIMAGE_ENDPOINT=http://"+p.Addr, "CIMAGE_TOKEN=", "CIMAGE_TOKEN_FILE="+filepath.Join(p.Root, "auth", "token"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}
