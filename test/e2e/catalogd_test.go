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

// catalogd is a running catalogd process.
type catalogd struct {
	Addr     string // host:port
	Root     string
	User     string
	Password string
	// Log is the file that its standard output and error go to, which
	// holds a line per request (server/middleware.Logging).
	Log string
	cmd *exec.Cmd
}

// kill ends catalogd with SIGKILL: no shutdown code runs.
func (c *catalogd) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
}

func (c *catalogd) URL(path string) string { return "http://" + c.Addr + path }

// freeAddr returns a free loopback address.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// runCatalogd runs a catalogd subcommand to completion.
func runCatalogd(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "catalogd"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("catalogd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startCatalogd starts `catalogd serve` with its default settings on a free
// loopback port, after seeding the root when seed is true. It is stopped
// when the test ends.
func startCatalogd(t *testing.T, seed bool, extra ...string) *catalogd {
	t.Helper()
	var seedArgs []string
	if seed {
		seedArgs = []string{}
	}
	return startCatalogdSeeded(t, seedArgs, extra...)
}

// startCatalogdSeeded is startCatalogd with `catalogd seed` flags: nil seeds
// nothing, an empty list seeds with the defaults.
func startCatalogdSeeded(t *testing.T, seedArgs []string, extra ...string) *catalogd {
	t.Helper()
	root := t.TempDir()
	if seedArgs != nil {
		runCatalogd(t, append([]string{"seed", "--root", root}, seedArgs...)...)
	}
	return startCatalogdAt(t, root, extra...)
}

// startCatalogdAt starts `catalogd serve` on the catalog root, which may
// hold a catalog already.
func startCatalogdAt(t *testing.T, root string, extra ...string) *catalogd {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{"serve", "--root", root, "--listen", addr}, extra...)
	cmd := exec.Command(filepath.Join(binDir, "catalogd"), args...)
	logf, err := os.Create(filepath.Join(t.TempDir(), "catalogd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("catalogd log:\n%s", b)
		}
	})
	c := &catalogd{Addr: addr, Root: root, User: "admin", Log: logf.Name(), cmd: cmd}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(c.URL("/healthz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("catalogd did not answer on %s within 30 s: %v\n%s", addr, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if pw, err := os.ReadFile(filepath.Join(root, "auth", "admin-password")); err == nil {
		c.Password = strings.TrimSpace(string(pw))
	}
	return c
}

// find calls the find extension with the query q.
func (c *catalogd) find(t *testing.T, q string) (int, api.FindResponse, string) {
	t.Helper()
	resp, err := http.Get(c.URL("/v2/_find?" + q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var fr api.FindResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &fr); err != nil {
			t.Fatalf("find %q: %v\n%s", q, err, body)
		}
	}
	return resp.StatusCode, fr, string(body)
}

func names(fr api.FindResponse) []string {
	var out []string
	for _, e := range fr.Images {
		out = append(out, e.Name+"@"+e.Version)
	}
	return out
}

// client is a third-party command-line client with its own home, so that
// a login is kept between its calls and never touches the user's.
type client struct {
	bin string
	env []string
}

func newClient(t *testing.T, name string) *client {
	home := t.TempDir()
	return &client{
		bin: tool(t, name),
		env: append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker")),
	}
}

// run runs the client to completion and returns its standard output.
func (c *client) run(t *testing.T, args ...string) string {
	t.Helper()
	return c.runIn(t, "", args...)
}

// runIn is run in the working directory dir.
func (c *client) runIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Env, cmd.Dir = &stdout, &stderr, c.env, dir
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", filepath.Base(c.bin), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func mustFindOne(t *testing.T, c *catalogd, name, version string) api.FindEntry {
	t.Helper()
	code, fr, body := c.find(t, fmt.Sprintf("name=%s&requiredVersion=%s", name, version))
	if code != http.StatusOK || len(fr.Images) != 1 {
		t.Fatalf("find %s %s: %d %s", name, version, code, body)
	}
	return fr.Images[0]
}
