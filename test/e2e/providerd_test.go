package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
)

// providerd is a running providerd process. Its API v1 is on the unix
// socket Socket, which cimage uses, and on the loopback address Addr behind
// the bearer token that providerd made in its root, which call sends.
type providerd struct {
	Addr   string
	Root   string
	RunDir string
	cmd    *exec.Cmd
	log    *os.File
	args   []string
}

func (p *providerd) URL(path string) string { return "http://" + p.Addr + path }

// Socket is the unix socket of API v1; DockerSocket that of the Docker API.
func (p *providerd) Socket() string       { return filepath.Join(p.RunDir, "providerd.sock") }
func (p *providerd) DockerSocket() string { return filepath.Join(p.RunDir, "docker.sock") }

// Token is the bearer token of the TCP listeners, from the root.
func (p *providerd) Token(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.Root, "auth", "token"))
	if err != nil {
		t.Fatalf("providerd's token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// startProviderd starts `providerd serve` on a free loopback port with one
// source, catalog=sourceURL, and a fresh root unless root is given.
func startProviderd(t *testing.T, sourceURL, root string, extra ...string) *providerd {
	t.Helper()
	if root == "" {
		root = t.TempDir()
	}
	p := &providerd{Addr: freeAddr(t), Root: root, RunDir: runDir(t)}
	p.args = append([]string{"serve", "--root", root, "--run-dir", p.RunDir, "--listen", p.Addr, "--source", "catalog=" + sourceURL}, extra...)
	p.start(t)
	t.Cleanup(func() { p.stop(t) })
	return p
}

// runDir is a fresh directory for a providerd's sockets, short enough for
// a socket's path and searchable by every user, as /run is.
func runDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cp-run-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// unixClient is an HTTP client whose every connection goes to sock.
func unixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
}

func (p *providerd) start(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(p.Root, "..", filepath.Base(p.Root)+".providerd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.log = logf
	p.cmd = exec.Command(filepath.Join(binDir, "providerd"), p.args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	hc := unixClient(p.Socket())
	for {
		resp, err := hc.Get("http://providerd/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("providerd did not answer on %s within 30 s: %v\n%s", p.Addr, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends providerd with SIGINT, as an administrator would.
func (p *providerd) stop(t *testing.T) {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	p.cmd = nil
	p.log.Close()
	if t.Failed() {
		b, _ := os.ReadFile(p.log.Name())
		t.Logf("providerd log:\n%s", b)
	}
}

// kill ends providerd with SIGKILL: no shutdown code runs.
func (p *providerd) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	p.cmd = nil
	p.log.Close()
}

// call sends a v1 request over TCP with the token and decodes a JSON answer into out (if not nil).
// It returns the status and the raw body.
func (p *providerd) call(t *testing.T, method, path string, in, out any) (int, string) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.URL(path), body)
	if err != nil {
		t.Fatal(err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+p.Token(t))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

// images lists the installed images through the API.
func (p *providerd) images(t *testing.T) []api.Image {
	t.Helper()
	var out struct {
		Images []api.Image `json:"images"`
	}
	if code, body := p.call(t, http.MethodGet, "/v1/images", nil, &out); code != http.StatusOK {
		t.Fatalf("GET /v1/images: %d %s", code, body)
	}
	return out.Images
}

// install starts an install job through the API and returns it.
func (p *providerd) install(t *testing.T, req api.InstallRequest) api.Job {
	t.Helper()
	var job api.Job
	if code, body := p.call(t, http.MethodPost, "/v1/images/install", req, &job); code != http.StatusAccepted {
		t.Fatalf("install %+v: %d %s", req, code, body)
	}
	return job
}

// waitJob polls a job until it ends, for at most two minutes.
func (p *providerd) waitJob(t *testing.T, id string) api.Job {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var job api.Job
		if code, body := p.call(t, http.MethodGet, "/v1/jobs/"+id, nil, &job); code != http.StatusOK {
			t.Fatalf("job %s: %d %s", id, code, body)
		}
		switch job.State {
		case api.JobSucceeded, api.JobFailed, api.JobCanceled:
			return job
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after 2 minutes", id, job.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// blobFiles lists the committed blobs of providerd's content store.
func blobFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, alg := range []string{"sha256", "sha512"} {
		m, err := filepath.Glob(filepath.Join(root, "content", "blobs", alg, "*"))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	return out
}

// cimage runs the cimage CLI against p's unix socket and returns its output and exit code.
func cimage(t *testing.T, p *providerd, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "cimage"), args...)
	cmd.Env = append(os.Environ(), "CIMAGE_ENDPOINT=unix://"+p.Socket())
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("cimage %s: %v", strings.Join(args, " "), err)
	}
	return string(out), code
}

func mustCimage(t *testing.T, p *providerd, args ...string) string {
	t.Helper()
	out, code := cimage(t, p, args...)
	if code != 0 {
		t.Fatalf("cimage %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func findImage(imgs []api.Image, name, version string) *api.Image {
	for i := range imgs {
		if strings.EqualFold(imgs[i].Name, name) && (version == "" || imgs[i].Version == version) {
			return &imgs[i]
		}
	}
	return nil
}

func describe(imgs []api.Image) string {
	var s []string
	for _, i := range imgs {
		s = append(s, fmt.Sprintf("%s %s", i.Name, i.Version))
	}
	return strings.Join(s, ", ")
}
