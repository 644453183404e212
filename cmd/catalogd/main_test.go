package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/cmd/internal/cli"
	catalogserver "github.com/containerprovider/containerprovider/server/catalog"
)

// syncBuffer is an output stream that a running command and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testApp is an app with an environment of its own and captured output.
func testApp(env map[string]string, stdin string) (*app, *syncBuffer, *syncBuffer) {
	out, errOut := &syncBuffer{}, &syncBuffer{}
	return &app{
		stdin:  strings.NewReader(stdin),
		stdout: out,
		stderr: errOut,
		getenv: func(k string) string { return env[k] },
	}, out, errOut
}

// parseServe parses serve's flags as main does, without running it.
func parseServe(t *testing.T, env map[string]string, args ...string) (*serveConfig, error) {
	t.Helper()
	a, _, errOut := testApp(env, "")
	f := cli.NewFlagSet("catalogd", "serve", a.getenv, errOut)
	c := &serveConfig{}
	c.register(f)
	if err := f.Parse(args); err != nil {
		return c, err
	}
	return c, c.check(f.Args())
}

func TestServeFlagsAndEnvironment(t *testing.T) {
	home := map[string]string{"HOME": "/home/u"}
	t.Run("defaults", func(t *testing.T) {
		c, err := parseServe(t, home)
		if err != nil {
			t.Fatal(err)
		}
		if c.listen != "127.0.0.1:5000" || c.Root != "/home/u/.local/share/containerprovider/catalogd" ||
			c.LogFormat != "text" || c.LogLevel != "info" || c.insecureDev || c.readOnly || c.htpasswd != "" ||
			c.maxManifestSize != 4<<20 || c.maxBlobSize != catalogserver.DefaultMaxBlobSize ||
			c.authFailLimit != 5 || c.authFailWindow != time.Minute || c.tokenRealm != "" {
			t.Fatalf("defaults %+v", c)
		}
	})
	t.Run("environment", func(t *testing.T) {
		env := map[string]string{
			"HOME":                       "/home/u",
			"CATALOGD_ROOT":              "/srv/catalog",
			"CATALOGD_LISTEN":            "127.0.0.1:6000",
			"CATALOGD_READ_ONLY":         "true",
			"CATALOGD_MAX_MANIFEST_SIZE": "1MiB",
			"CATALOGD_LOG_FORMAT":        "json",
			"CATALOGD_HTPASSWD":          "/etc/catalogd/htpasswd",
			"CATALOGD_AUTH_FAIL_LIMIT":   "3",
			"CATALOGD_AUTH_FAIL_WINDOW":  "2s",
			"CATALOGD_TOKEN_REALM":       "https://registry.example.com/token",
		}
		c, err := parseServe(t, env)
		if err != nil {
			t.Fatal(err)
		}
		if c.Root != "/srv/catalog" || c.listen != "127.0.0.1:6000" || !c.readOnly || c.maxManifestSize != 1<<20 ||
			c.LogFormat != "json" || c.htpasswd != "/etc/catalogd/htpasswd" || c.authFailLimit != 3 || c.authFailWindow != 2*time.Second ||
			c.tokenRealm != "https://registry.example.com/token" {
			t.Fatalf("from the environment: %+v", c)
		}
		// Flags win over the environment.
		c, err = parseServe(t, env, "--listen", "127.0.0.1:7000", "--read-only=false", "--max-manifest-size", "2097152",
			"--auth-fail-limit", "7", "--auth-fail-window", "90s")
		if err != nil {
			t.Fatal(err)
		}
		if c.listen != "127.0.0.1:7000" || c.readOnly || c.maxManifestSize != 2<<20 || c.authFailLimit != 7 || c.authFailWindow != 90*time.Second {
			t.Fatalf("flags over the environment: %+v", c)
		}
	})
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"bad boolean in the environment", map[string]string{"CATALOGD_INSECURE_DEV": "yes please"}, nil, "CATALOGD_INSECURE_DEV"},
		{"bad size in the environment", map[string]string{"CATALOGD_MAX_BLOB_SIZE": "big"}, nil, "CATALOGD_MAX_BLOB_SIZE"},
		{"bad size flag", nil, []string{"--max-manifest-size", "4 megs"}, "max-manifest-size"},
		{"cert without key", nil, []string{"--tls-cert", "c.pem"}, "--tls-key"},
		{"insecure dev with htpasswd", nil, []string{"--insecure-dev", "--htpasswd", "f"}, "exclude"},
		{"bad listen address", nil, []string{"--listen", "localhost"}, "--listen"},
		{"bad log format", nil, []string{"--log-format", "xml"}, "--log-format"},
		{"bad log level", nil, []string{"--log-level", "loud"}, "--log-level"},
		{"no root", map[string]string{}, nil, "--root"},
		{"zero manifest size", nil, []string{"--max-manifest-size", "0"}, "positive"},
		{"bad window in the environment", map[string]string{"CATALOGD_AUTH_FAIL_WINDOW": "a minute"}, nil, "CATALOGD_AUTH_FAIL_WINDOW"},
		{"bad window flag", nil, []string{"--auth-fail-window", "10"}, "auth-fail-window"},
		{"window under a second", nil, []string{"--auth-fail-window", "500ms"}, "at least 1s"},
		{"zero failure limit", nil, []string{"--auth-fail-limit", "0"}, "at least 1"},
		{"relative token realm", nil, []string{"--token-realm", "/token"}, "--token-realm"},
		{"extra arguments", nil, []string{"now"}, "unexpected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"HOME": "/home/u"}
			if tc.env != nil {
				env = tc.env
				if _, ok := env["HOME"]; !ok && tc.name != "no root" {
					env["HOME"] = "/home/u"
				}
			}
			_, err := parseServe(t, env, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one that mentions %q", err, tc.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	a, out, _ := testApp(map[string]string{"HOME": "/home/u"}, "")
	if code := a.main(context.Background(), []string{"-h"}); code != 0 {
		t.Fatalf("-h exit %d", code)
	}
	help := out.String()
	for _, c := range a.commands() {
		if !strings.Contains(help, "  "+c.Name+" ") || !strings.Contains(help, c.Summary) {
			t.Errorf("help lacks the command %s and its summary", c.Name)
		}
		f := a.program().FlagSet(c, io.Discard)
		c.Setup(f)
		f.VisitAll(func(fl *flag.Flag) {
			if !strings.Contains(help, "-"+fl.Name) || !strings.Contains(help, "$"+f.EnvName(fl.Name)) {
				t.Errorf("help lacks the flag %s of %s or its variable %s", fl.Name, c.Name, f.EnvName(fl.Name))
			}
		})
	}
	for _, want := range []string{"127.0.0.1:5000", "CATALOGD_INSECURE_DEV", "/home/u/.local/share/containerprovider/catalogd"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}

	a, _, errOut := testApp(nil, "")
	if code := a.main(context.Background(), []string{"serve", "-h"}); code != 0 || !strings.Contains(errOut.String(), "catalogd serve [flags]") {
		t.Fatalf("serve -h: exit %d\n%s", code, errOut.String())
	}
	for _, args := range [][]string{nil, {"frobnicate"}, {"serve", "--no-such-flag"}} {
		a, _, _ := testApp(nil, "")
		if code := a.main(context.Background(), args); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

func TestPublishFlags(t *testing.T) {
	dir := t.TempDir()
	layer := filepath.Join(dir, "layer.tar")
	os.WriteFile(layer, []byte("not really a tar"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"neither dir nor layer", []string{"--name", "a", "--version", "1"}, "exactly one"},
		{"both dir and layer", []string{"--name", "a", "--version", "1", "--dir", dir, "--layer", layer}, "exactly one"},
		{"no name", []string{"--version", "1", "--dir", dir}, "--name"},
		{"dir that is a file", []string{"--name", "a", "--version", "1", "--dir", layer}, "not a directory"},
		{"layer that is a directory", []string{"--name", "a", "--version", "1", "--layer", dir}, "is a directory"},
		{"missing layer", []string{"--name", "a", "--version", "1", "--layer", filepath.Join(dir, "nope")}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _, _ := testApp(map[string]string{"HOME": dir}, "")
			f := cli.NewFlagSet("catalogd", "publish", a.getenv, io.Discard)
			c := &publishConfig{}
			c.register(f)
			if err := f.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if _, err := c.check(f.Args()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one that mentions %q", err, tc.want)
			}
		})
	}
	t.Run("environment", func(t *testing.T) {
		a, _, _ := testApp(map[string]string{"HOME": dir, "CATALOGD_NAME": "Demo", "CATALOGD_VERSION": "1.0", "CATALOGD_DIR": dir}, "")
		f := cli.NewFlagSet("catalogd", "publish", a.getenv, io.Discard)
		c := &publishConfig{}
		c.register(f)
		if err := f.Parse(nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.check(nil); err != nil || c.name != "Demo" || c.version != "1.0" {
			t.Fatalf("%+v: %v", c, err)
		}
	})
}

func TestSeedFlags(t *testing.T) {
	a, _, _ := testApp(map[string]string{"HOME": "/h", "CATALOGD_BASE_LAYER_SIZE": "1GiB"}, "")
	f := cli.NewFlagSet("catalogd", "seed", a.getenv, io.Discard)
	c := &seedConfig{}
	c.register(f)
	if err := f.Parse([]string{"--app-layer-size", "4MiB", "--compression", "none"}); err != nil {
		t.Fatal(err)
	}
	if c.baseLayerSize != 1<<30 || c.appLayerSize != 4<<20 || c.compression != "none" {
		t.Fatalf("%+v", c)
	}
	a, _, errOut := testApp(map[string]string{"HOME": t.TempDir()}, "")
	if code := a.main(context.Background(), []string{"seed", "--compression", "zip"}); code != 2 ||
		!strings.Contains(errOut.String(), "compression") {
		t.Fatalf("bad compression: exit %d\n%s", code, errOut.String())
	}
}

func TestPasswd(t *testing.T) {
	root := t.TempDir()
	a, out, _ := testApp(nil, "s3cret\n")
	if code := a.main(context.Background(), []string{"passwd", "--root", root, "alice"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "alice") {
		t.Fatalf("output %q", out.String())
	}
	h, err := catalogserver.LoadHtpasswd(filepath.Join(root, "auth", "htpasswd"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Authenticate(context.Background(), "alice", "s3cret"); err != nil {
		t.Fatal("the password read from stdin does not authenticate")
	}
	custom := filepath.Join(t.TempDir(), "users")
	a, _, _ = testApp(map[string]string{"CATALOGD_HTPASSWD": custom}, "other\r\n")
	if code := a.main(context.Background(), []string{"passwd", "bob"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if h, err := catalogserver.LoadHtpasswd(custom); err != nil || h.Authenticate(context.Background(), "bob", "other") != nil {
		t.Fatalf("custom htpasswd: %v", err)
	}
	for _, tc := range []struct {
		name, stdin string
		args        []string
	}{
		{"no user", "pw\n", []string{"passwd", "--root", root}},
		{"empty password", "\n", []string{"passwd", "--root", root, "carol"}},
		{"bad user", "pw\n", []string{"passwd", "--root", root, "a:b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _, _ := testApp(nil, tc.stdin)
			if code := a.main(context.Background(), tc.args); code == 0 {
				t.Fatal("exit 0")
			}
		})
	}
}

func TestEnsureAdmin(t *testing.T) {
	root := t.TempDir()
	created, err := ensureAdmin(root)
	if err != nil || !created {
		t.Fatalf("first start: %v %v", created, err)
	}
	for _, p := range []string{defaultHtpasswd(root), adminPasswordPath(root)} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", p, st.Mode(), err)
		}
	}
	pw, _ := os.ReadFile(adminPasswordPath(root))
	password := strings.TrimSpace(string(pw))
	if len(password) < 24 {
		t.Fatalf("password of %d characters", len(password))
	}
	h, err := catalogserver.LoadHtpasswd(defaultHtpasswd(root))
	if err != nil || h.Authenticate(context.Background(), "admin", password) != nil {
		t.Fatalf("admin does not authenticate with the password file: %v", err)
	}
	before, _ := os.ReadFile(defaultHtpasswd(root))
	if created, err := ensureAdmin(root); err != nil || created {
		t.Fatalf("second start: %v %v", created, err)
	}
	if after, _ := os.ReadFile(defaultHtpasswd(root)); !bytes.Equal(before, after) {
		t.Fatal("second start changed the htpasswd file")
	}
}

// TestCommandsOnARoot seeds and publishes through main, checks that a root
// in use gives a clear error, then serves it and stops on cancel.
func TestCommandsOnARoot(t *testing.T) {
	root := t.TempDir()
	env := map[string]string{"CATALOGD_ROOT": root}
	small := []string{"--base-layer-size", "2KiB", "--app-layer-size", "512"}

	a, out, errOut := testApp(env, "")
	if code := a.main(context.Background(), append([]string{"seed"}, small...)); code != 0 {
		t.Fatalf("seed: exit %d\n%s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "20 images: 20 published, 0 skipped") {
		t.Fatalf("seed output:\n%s", out.String())
	}
	a, out, _ = testApp(env, "")
	if code := a.main(context.Background(), append([]string{"seed"}, small...)); code != 0 ||
		!strings.Contains(out.String(), "20 images: 0 published, 20 skipped") {
		t.Fatalf("second seed: exit %d\n%s", code, out.String())
	}

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "app.txt"), []byte("demo\n"), 0o644)
	a, out, errOut = testApp(env, "")
	code := a.main(context.Background(), []string{"publish", "--name", "DemoImage", "--version", "1.0",
		"--publisher", "Demo", "--parent", "NanoServer", "--dir", dir})
	if code != 0 || !regexp.MustCompile(`^sha256:[a-f0-9]{64}\n$`).MatchString(out.String()) {
		t.Fatalf("publish: exit %d, output %q\n%s", code, out.String(), errOut.String())
	}

	// Serve the root on a free loopback port.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sa, _, serveLog := testApp(env, "")
	served := make(chan int, 1)
	go func() { served <- sa.main(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--log-format", "json"}) }()
	addr := waitForListen(t, serveLog, served)

	// While it serves, the root is locked.
	a, _, errOut = testApp(env, "")
	if code := a.main(context.Background(), append([]string{"seed"}, small...)); code != 1 ||
		!strings.Contains(errOut.String(), "catalogd serve` running") {
		t.Fatalf("seed on a served root: exit %d\n%s", code, errOut.String())
	}

	resp, err := http.Get("http://" + addr + "/v2/_find?name=DemoImage")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"version":"1.0.0.0"`) || !strings.Contains(string(body), `"publisher":"CN=Demo"`) {
		t.Fatalf("find: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(serveLog.String(), "admin-password") {
		t.Fatalf("serve did not say where the admin password is:\n%s", serveLog.String())
	}
	pw, _ := os.ReadFile(adminPasswordPath(root))
	if strings.Contains(serveLog.String(), strings.TrimSpace(string(pw))) {
		t.Fatal("serve logged the admin password")
	}

	cancel()
	select {
	case code := <-served:
		if code != 0 {
			t.Fatalf("serve exit %d\n%s", code, serveLog.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("serve did not stop within a minute of its context's end")
	}
}

var listenPattern = regexp.MustCompile(`"listen":"(127\.0\.0\.1:\d+)"`)

// waitForListen waits, for at most a minute, for serve to log its address.
func waitForListen(t *testing.T, log *syncBuffer, served <-chan int) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if m := listenPattern.FindStringSubmatch(log.String()); m != nil && strings.Contains(log.String(), "catalogd serving") {
			return m[1]
		}
		select {
		case code := <-served:
			t.Fatalf("serve exited with %d:\n%s", code, log.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not log its address:\n%s", log.String())
	return ""
}

func TestInsecureDevWarns(t *testing.T) {
	root := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, _, log := testApp(map[string]string{"CATALOGD_ROOT": root}, "")
	served := make(chan int, 1)
	go func() {
		served <- a.main(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--insecure-dev", "--log-format", "json"})
	}()
	waitForListen(t, log, served)
	if !strings.Contains(log.String(), "WARNING") || !strings.Contains(log.String(), "ANYONE") {
		t.Fatalf("no loud warning:\n%s", log.String())
	}
	if _, err := os.Stat(defaultHtpasswd(root)); !os.IsNotExist(err) {
		t.Fatalf("insecure dev created credentials: %v", err)
	}
	cancel()
	if code := <-served; code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:5000", true},
		{"[::1]:5000", true},
		{"0.0.0.0:5000", false},
		{"192.0.2.1:5000", false},
	} {
		ta, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := isLoopback(ta); got != tc.want {
			t.Errorf("isLoopback(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestServeMissingHtpasswd(t *testing.T) {
	root := t.TempDir()
	missing := filepath.Join(root, "no-such-htpasswd")
	a, _, errOut := testApp(map[string]string{"CATALOGD_ROOT": root}, "")
	if code := a.main(context.Background(), []string{"serve", "--listen", "127.0.0.1:0", "--htpasswd", missing}); code != 1 ||
		!strings.Contains(errOut.String(), "catalogd passwd --htpasswd "+missing) {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
}
