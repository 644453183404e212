package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
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

func testApp(env map[string]string) (*app, *syncBuffer, *syncBuffer) {
	out, errOut := &syncBuffer{}, &syncBuffer{}
	return &app{stdout: out, stderr: errOut, getenv: func(k string) string { return env[k] }}, out, errOut
}

// parseServe parses serve's flags as main does, without running it.
func parseServe(t *testing.T, env map[string]string, args ...string) (*serveConfig, error) {
	t.Helper()
	a, _, errOut := testApp(env)
	f := cli.NewFlagSet("providerd", "serve", a.getenv, errOut)
	c := &serveConfig{}
	c.register(f)
	if err := f.Parse(args); err != nil {
		return c, err
	}
	return c, c.check(f.Args())
}

func TestServeFlags(t *testing.T) {
	home := map[string]string{"HOME": "/home/u"}
	t.Run("defaults", func(t *testing.T) {
		c, err := parseServe(t, home)
		if err != nil {
			t.Fatal(err)
		}
		if c.Root != "/home/u/.local/share/containerprovider/providerd" || c.listen != "127.0.0.1:5050" ||
			c.parallelism != 4 || c.LogFormat != "text" || c.LogLevel != "info" ||
			c.tlsCert != "" || c.tlsKey != "" || c.tokenFile != "" || c.runDir != "" || c.socketGroup != "containerprovider" ||
			c.dockerListen != "" {
			t.Fatalf("defaults %+v", c)
		}
		if !reflect.DeepEqual(c.sources, []api.Source{{Name: "catalog", Location: "http://127.0.0.1:5000"}}) {
			t.Fatalf("default sources %+v", c.sources)
		}
	})
	t.Run("XDG_DATA_HOME first", func(t *testing.T) {
		c, err := parseServe(t, map[string]string{"HOME": "/home/u", "XDG_DATA_HOME": "/data"})
		if err != nil || c.Root != "/data/containerprovider/providerd" {
			t.Fatalf("root %q, %v", c.Root, err)
		}
	})
	t.Run("environment", func(t *testing.T) {
		c, err := parseServe(t, map[string]string{
			"HOME":                  "/home/u",
			"PROVIDERD_ROOT":        "/srv/providerd",
			"PROVIDERD_LISTEN":      "127.0.0.1:6000",
			"PROVIDERD_SOURCE":      "catalog=http://127.0.0.1:5001, hub=https://registry.example/",
			"PROVIDERD_PARALLELISM": "8",
			"PROVIDERD_LOG_FORMAT":  "json",
			"PROVIDERD_LOG_LEVEL":   "debug",
			"PROVIDERD_TOKEN_FILE":  "/etc/providerd/token",
		})
		if err != nil {
			t.Fatal(err)
		}
		if c.Root != "/srv/providerd" || c.listen != "127.0.0.1:6000" || c.parallelism != 8 || c.LogFormat != "json" ||
			c.LogLevel != "debug" || c.tokenFile != "/etc/providerd/token" {
			t.Fatalf("from the environment: %+v", c)
		}
		want := []api.Source{{Name: "catalog", Location: "http://127.0.0.1:5001"}, {Name: "hub", Location: "https://registry.example"}}
		if !reflect.DeepEqual(c.sources, want) {
			t.Fatalf("sources %+v, want %+v", c.sources, want)
		}
	})
	t.Run("flags win over the environment, and --source replaces the default", func(t *testing.T) {
		c, err := parseServe(t, map[string]string{"HOME": "/h", "PROVIDERD_LISTEN": "127.0.0.1:6000", "PROVIDERD_SOURCE": "env=http://e"},
			"--listen", "127.0.0.1:7000", "--source", "a=http://127.0.0.1:1", "--source", "b=https://b.example:5000", "--parallelism", "2")
		if err != nil {
			t.Fatal(err)
		}
		want := []api.Source{{Name: "a", Location: "http://127.0.0.1:1"}, {Name: "b", Location: "https://b.example:5000"}}
		if c.listen != "127.0.0.1:7000" || !reflect.DeepEqual(c.sources, want) || c.parallelism != 2 {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("a source's mirrors, on the command line and in the environment", func(t *testing.T) {
		want := []api.Source{
			{Name: "a", Location: "http://127.0.0.1:1", Mirrors: []api.SourceMirror{{Location: "http://127.0.0.1:2"}, {Location: "https://m.example"}}},
			{Name: "b", Location: "https://b.example"},
		}
		c, err := parseServe(t, home, "--source", "a=http://127.0.0.1:1,mirror=http://127.0.0.1:2,mirror=https://m.example/",
			"--source", "b=https://b.example", "--mirror-timeout", "2s")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.sources, want) || c.mirrorTimeout != 2*time.Second {
			t.Fatalf("sources %+v, mirror time-out %s", c.sources, c.mirrorTimeout)
		}
		c, err = parseServe(t, map[string]string{"HOME": "/h", "PROVIDERD_SOURCE": "a=http://127.0.0.1:1,mirror=http://127.0.0.1:2, mirror=https://m.example,b=https://b.example"})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.sources, want) {
			t.Fatalf("sources from the environment %+v, want %+v", c.sources, want)
		}
	})
	t.Run("a trusted source, on the command line and in the environment", func(t *testing.T) {
		want := []api.Source{
			{Name: "a", Location: "http://127.0.0.1:1", Trusted: true, Mirrors: []api.SourceMirror{{Location: "http://127.0.0.1:2"}}},
			{Name: "b", Location: "https://b.example"},
			{Name: "trusted", Location: "https://t.example", Trusted: true},
		}
		for _, tc := range []struct {
			name string
			env  map[string]string
			args []string
		}{
			{"flags", home, []string{"--source", "a=http://127.0.0.1:1,trusted,mirror=http://127.0.0.1:2", "--source", "b=https://b.example", "--source", "trusted=https://t.example,trusted"}},
			{"flags, trusted after the mirror", home, []string{"--source", "a=http://127.0.0.1:1,mirror=http://127.0.0.1:2,trusted", "--source", "b=https://b.example", "--source", "trusted=https://t.example, trusted"}},
			{"environment", map[string]string{"HOME": "/h", "PROVIDERD_SOURCE": "a=http://127.0.0.1:1, trusted, mirror=http://127.0.0.1:2,b=https://b.example,trusted=https://t.example,trusted"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c, err := parseServe(t, tc.env, tc.args...)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(c.sources, want) {
					t.Fatalf("sources %+v, want %+v", c.sources, want)
				}
				// The flag's value reads back as the environment's list.
				text := (&sourcesValue{list: &c.sources}).String()
				var back []api.Source
				if err := (&sourcesValue{list: &back}).SetEnv(text); err != nil || !reflect.DeepEqual(back, want) {
					t.Fatalf("%q reads back as %+v, %v", text, back, err)
				}
			})
		}
	})
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"a mirror before any source in the environment", map[string]string{"HOME": "/h", "PROVIDERD_SOURCE": "mirror=http://m,a=http://x"}, nil},
		{"trusted before any source in the environment", map[string]string{"HOME": "/h", "PROVIDERD_SOURCE": "trusted,a=http://x"}, nil},
		{"trusted given twice", home, []string{"--source", "a=http://x,trusted,trusted"}},
		{"trusted given twice in the environment", map[string]string{"HOME": "/h", "PROVIDERD_SOURCE": "a=http://x,trusted,trusted"}, nil},
		{"trusted with a value", home, []string{"--source", "a=http://x,trusted=true"}},
		{"a mirror with a bad URL", home, []string{"--source", "a=http://x,mirror=ftp://m"}},
		{"a source option that is not a mirror", home, []string{"--source", "a=http://x,insecure"}},
		{"a mirror time-out of 0", home, []string{"--mirror-timeout", "0s"}},
		{"bad parallelism in the environment", map[string]string{"HOME": "/h", "PROVIDERD_PARALLELISM": "many"}, nil},
		{"bad source in the environment", map[string]string{"HOME": "/h", "PROVIDERD_SOURCE": "nourl"}, nil},
		{"parallelism 0", home, []string{"--parallelism", "0"}},
		{"parallelism too high", home, []string{"--parallelism", "65"}},
		{"source without =", home, []string{"--source", "catalog"}},
		{"source with a bad name", home, []string{"--source", "a b=http://x"}},
		{"source with a bad URL", home, []string{"--source", "a=ftp://x"}},
		{"source given twice", home, []string{"--source", "a=http://x", "--source", "A=http://y"}},
		{"log format", home, []string{"--log-format", "xml"}},
		{"log level", home, []string{"--log-level", "loud"}},
		{"cert without key", home, []string{"--tls-cert", "c.pem"}},
		{"bad listen", home, []string{"--listen", "5050"}},
		{"bad port", home, []string{"--listen", "127.0.0.1:http-ish"}},
		{"empty socket group", home, []string{"--socket-group", ""}},
		{"no root", map[string]string{}, nil},
		{"arguments", home, []string{"extra"}},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			if _, err := parseServe(t, tc.env, tc.args...); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestCheckExposure(t *testing.T) {
	for _, tc := range []struct {
		listen  string
		tls, ok bool
	}{
		{listen: "127.0.0.1:5050", ok: true},
		{listen: "127.1.2.3:5050", ok: true},
		{listen: "[::1]:5050", ok: true},
		{listen: "localhost:5050", ok: true},
		{listen: "LOCALHOST:5050", ok: true},
		{listen: "0.0.0.0:5050"},
		{listen: ":5050"},
		{listen: "[::]:5050"},
		{listen: "192.168.1.10:5050"},
		{listen: "host.example:5050"},
		{listen: "0.0.0.0:5050", tls: true, ok: true},
		{listen: "192.168.1.10:5050", tls: true, ok: true},
	} {
		name := tc.listen
		if tc.tls {
			name += " tls"
		}
		t.Run(name, func(t *testing.T) {
			err := checkExposure(tc.listen, tc.tls)
			if tc.ok != (err == nil) {
				t.Fatalf("checkExposure = %v, want ok %v", err, tc.ok)
			}
			if err != nil && !cli.IsUsage(err) {
				t.Fatalf("%v is not a usage error", err)
			}
			if err != nil && !strings.Contains(err.Error(), "refusing to listen") {
				t.Fatalf("unclear error %q", err)
			}
		})
	}
}

// TestRefusalExitStatus runs the command line: a --listen beyond loopback
// without TLS exits with status 2 and says why, before
// anything listens or opens the root.
func TestRefusalExitStatus(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	for _, args := range [][]string{
		{"serve", "--root", root, "--listen", "0.0.0.0:0"},
		{"serve", "--root", root, "--listen", ":0", "--token-file", "/nonexistent"},
		{"serve", "--root", root, "--listen", "[::]:0", "--docker-listen", "127.0.0.1:0"},
		{"serve", "--root", root, "--docker-listen", "0.0.0.0:0"},
	} {
		a, _, errOut := testApp(nil)
		if code := a.main(t.Context(), args); code != 2 {
			t.Fatalf("%v: exit %d, want 2; stderr %s", args, code, errOut)
		}
		msg := errOut.String()
		if !strings.Contains(msg, "refusing to listen") || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
			t.Fatalf("%v: stderr %q", args, msg)
		}
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("the root was created: %v", err)
	}
}

func TestHelp(t *testing.T) {
	a, out, _ := testApp(nil)
	if code := a.main(t.Context(), []string{"-h"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"providerd serve", "PROVIDERD_ROOT", "PROVIDERD_LISTEN", "PROVIDERD_SOURCE", "PROVIDERD_PARALLELISM",
		"PROVIDERD_LOG_FORMAT", "PROVIDERD_LOG_LEVEL", "PROVIDERD_TLS_CERT", "PROVIDERD_TLS_KEY", "PROVIDERD_TOKEN_FILE", "Exit status"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
	a, _, errOut := testApp(nil)
	if code := a.main(t.Context(), []string{"serve", "-h"}); code != 0 || !strings.Contains(errOut.String(), "--token-file") {
		t.Fatalf("serve -h: exit %d, %s", code, errOut)
	}
	a, _, _ = testApp(nil)
	if code := a.main(t.Context(), []string{"dance"}); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
	a, _, _ = testApp(nil)
	if code := a.main(t.Context(), nil); code != 2 {
		t.Fatalf("no command: exit %d", code)
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, _, errOut := testApp(nil)
	log := (&cli.DaemonFlags{LogFormat: "text", LogLevel: "info"}).Logger(errOut)
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want          string // "" for an error
	}{
		{"first line, trimmed", "  0123456789abcdefXYZ \nsecond line\n", 0o600, "0123456789abcdefXYZ"},
		{"no newline", "0123456789abcdef", 0o600, "0123456789abcdef"},
		{"too short", "short\n", 0o600, ""},
		{"empty", "", 0o600, ""},
		{"inner space", "0123456789 abcdef0123\n", 0o600, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readToken(write(tc.name, tc.content, tc.mode), log)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("accepted %q", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("readToken = %q, %v, want %q", got, err, tc.want)
			}
		})
	}
	if _, err := readToken(filepath.Join(dir, "missing"), log); err == nil {
		t.Fatal("missing file accepted")
	}
	if _, err := readToken(dir, log); err == nil {
		t.Fatal("directory accepted")
	}
	if _, err := readToken(write("open", "0123456789abcdef\n", 0o644), log); err != nil || !strings.Contains(errOut.String(), "chmod 600") {
		t.Fatalf("a readable token file: %v, log %q", err, errOut)
	}
}

// shortDir is a fresh directory whose path is short enough for a unix
// socket in it.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// running is a providerd serve started by a test.
type running struct {
	addr   net.Addr
	cancel context.CancelFunc
	code   chan int
	stderr *syncBuffer
}

// startServe runs `providerd serve args...` on 127.0.0.1:0 until the test
// stops it.
func startServe(t *testing.T, args ...string) *running {
	t.Helper()
	a, _, errOut := testApp(map[string]string{"HOME": t.TempDir()})
	listening := make(chan net.Addr, 1)
	a.onListen = func(addr net.Addr) { listening <- addr }
	ctx, cancel := context.WithCancel(t.Context())
	r := &running{cancel: cancel, code: make(chan int, 1), stderr: errOut}
	go func() {
		r.code <- a.main(ctx, append([]string{"serve", "--listen", "127.0.0.1:0", "--run-dir", shortDir(t), "--log-format", "json"}, args...))
	}()
	select {
	case r.addr = <-listening:
	case code := <-r.code:
		cancel()
		t.Fatalf("serve exited with %d: %s", code, errOut)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("serve did not listen: %s", errOut)
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends serve as a signal would, and checks that it exits with 0.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case code := <-r.code:
		if code != 0 {
			t.Errorf("serve exited with %d: %s", code, r.stderr)
		}
		r.code <- code // a second stop sees it again
	case <-time.After(60 * time.Second):
		t.Errorf("serve did not stop: %s", r.stderr)
	}
}

// TestServeWithToken starts the real provider behind the real server on
// loopback with a token file: requests without the token get 401, with
// it they are served, and the first start added the default sources.
func TestServeWithToken(t *testing.T) {
	dir := t.TempDir()
	const token = "test-token-0123456789abcdef"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startServe(t, "--root", filepath.Join(dir, "root"), "--token-file", tokenFile, "--source", "local=http://127.0.0.1:1")
	endpoint := "http://" + r.addr.String()

	anon, err := client.New(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anon.Health(t.Context()); !errdefs.IsUnauthenticated(err) {
		t.Fatalf("health without the token: %v", err)
	}
	wrong, _ := client.New(endpoint, client.WithToken("test-token-0123456789abcdeX"))
	if _, err := wrong.Sources(t.Context()); !errdefs.IsUnauthenticated(err) {
		t.Fatalf("sources with a wrong token: %v", err)
	}
	c, _ := client.New(endpoint, client.WithToken(token))
	h, err := c.Health(t.Context())
	if err != nil || h.Status != "ok" {
		t.Fatalf("health %+v, %v", h, err)
	}
	sources, err := c.Sources(t.Context())
	if err != nil || len(sources) != 1 || sources[0].Name != "local" || sources[0].Location != "http://127.0.0.1:1" {
		t.Fatalf("sources %+v, %v", sources, err)
	}
	if _, err := c.Metrics(t.Context()); err != nil {
		t.Fatalf("metrics: %v", err)
	}
	r.stop(t)
	if !strings.Contains(r.stderr.String(), "shutting down") {
		t.Fatalf("no shutdown line: %s", r.stderr)
	}
}

// TestServeTLS serves HTTPS with a self-signed certificate made here.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("tls-token-0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startServe(t, "--root", filepath.Join(dir, "root"), "--tls-cert", certFile, "--tls-key", keyFile, "--token-file", tokenFile)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer hc.CloseIdleConnections()
	c, err := client.New("https://"+r.addr.String(), client.WithHTTPClient(hc), client.WithToken("tls-token-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if h, err := c.Health(t.Context()); err != nil || h.Status != "ok" {
		t.Fatalf("health over TLS: %+v, %v", h, err)
	}
	plain, _ := client.New("http://"+r.addr.String(), client.WithToken("tls-token-0123456789abcdef"))
	if _, err := plain.Health(t.Context()); err == nil {
		t.Fatal("plain HTTP served on the TLS port")
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "providerd test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestDockerListenFlag checks the exposure rule of --docker-listen and its
// environment variable.
func TestDockerListenFlag(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
		want    string
	}{
		{name: "off by default"},
		{name: "loopback", args: []string{"--docker-listen", "127.0.0.1:2375"}, want: "127.0.0.1:2375"},
		{name: "environment", env: map[string]string{"PROVIDERD_DOCKER_LISTEN": "localhost:2375"}, want: "localhost:2375"},
		{name: "beyond loopback without TLS", args: []string{"--docker-listen", "0.0.0.0:2375"}, wantErr: "--docker-listen"},
		{name: "same address as --listen", args: []string{"--listen", "127.0.0.1:2375", "--docker-listen", "127.0.0.1:2375"}, wantErr: "the same address"},
		{name: "bad address", args: []string{"--docker-listen", "nowhere"}, wantErr: "--docker-listen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseServe(t, tc.env, append([]string{"--root", t.TempDir()}, tc.args...)...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.dockerListen != tc.want {
				t.Fatalf("docker listen %q, %v; want %q", c.dockerListen, err, tc.want)
			}
		})
	}
}

// TestServeDockerAPI serves the Docker API on its own loopback listener,
// behind the same token as API v1.
func TestServeDockerAPI(t *testing.T) {
	dir := t.TempDir()
	const token = "test-token-0123456789abcdef"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, _, errOut := testApp(map[string]string{"HOME": t.TempDir()})
	listening := make(chan net.Addr, 2)
	a.onDockerListen = func(addr net.Addr) { listening <- addr }
	ctx, cancel := context.WithCancel(t.Context())
	code := make(chan int, 1)
	go func() {
		code <- a.main(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--docker-listen", "127.0.0.1:0", "--run-dir", shortDir(t),
			"--root", filepath.Join(dir, "root"), "--token-file", tokenFile, "--source", "local=http://127.0.0.1:1"})
	}()
	var addr net.Addr
	select {
	case addr = <-listening:
	case c := <-code:
		cancel()
		t.Fatalf("serve exited with %d: %s", c, errOut)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("the Docker API did not listen: %s", errOut)
	}
	ping := func(auth string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr.String()+"/v1.50/_ping", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := ping(""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("ping without the token: %d", resp.StatusCode)
	}
	if resp := ping("Bearer " + token); resp.StatusCode != http.StatusOK || resp.Header.Get("Api-Version") != "1.51" {
		t.Fatalf("ping with the token: %d %v", resp.StatusCode, resp.Header)
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("serve exited with %d: %s", c, errOut)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop: %s", errOut)
	}
}

// TestServeSocketsAndToken: without --token-file, the first start makes a
// token of 64 hex characters at ROOT/auth/token, mode 0600, and the next
// start keeps it; the unix sockets serve without it, TCP only with it.
func TestServeSocketsAndToken(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	runDir := shortDir(t)
	a, _, errOut := testApp(map[string]string{"HOME": t.TempDir()})
	listening := make(chan net.Addr, 1)
	sockets := make(chan [2]net.Addr, 1)
	a.onListen = func(addr net.Addr) { listening <- addr }
	a.onSockets = func(v1, docker net.Addr) { sockets <- [2]net.Addr{v1, docker} }
	ctx, cancel := context.WithCancel(t.Context())
	code := make(chan int, 1)
	go func() {
		code <- a.main(ctx, []string{"serve", "--root", root, "--run-dir", runDir, "--listen", "127.0.0.1:0", "--source", "local=http://127.0.0.1:1"})
	}()
	var addr net.Addr
	var socks [2]net.Addr
	select {
	case addr = <-listening:
		socks = <-sockets
	case c := <-code:
		cancel()
		t.Fatalf("serve exited with %d: %s", c, errOut)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("serve did not listen: %s", errOut)
	}
	if socks[0].String() != filepath.Join(runDir, "providerd.sock") || socks[1].String() != filepath.Join(runDir, "docker.sock") {
		t.Fatalf("sockets %v", socks)
	}
	tokenFile := filepath.Join(root, "auth", "token")
	fi, err := os.Stat(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(tokenFile)
	token := strings.TrimSpace(string(b))
	if fi.Mode().Perm() != 0o600 || len(token) != 64 || strings.Trim(token, "0123456789abcdef") != "" {
		t.Fatalf("token file mode %v, token %q", fi.Mode().Perm(), token)
	}

	sock, err := client.New("unix://" + socks[0].String())
	if err != nil {
		t.Fatal(err)
	}
	if h, err := sock.Health(t.Context()); err != nil || h.Status != "ok" {
		t.Fatalf("health on the socket: %+v, %v", h, err)
	}
	anon, _ := client.New("http://" + addr.String())
	if _, err := anon.Health(t.Context()); !errdefs.IsUnauthenticated(err) {
		t.Fatalf("health over TCP without the token: %v", err)
	}
	c, _ := client.New("http://"+addr.String(), client.WithToken(token))
	if _, err := c.Sources(t.Context()); err != nil {
		t.Fatalf("sources over TCP with the token: %v", err)
	}
	dockerPing, err := unixGet(socks[1].String(), "/_ping")
	if err != nil || dockerPing != http.StatusOK {
		t.Fatalf("docker ping on its socket: %d, %v", dockerPing, err)
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("serve exited with %d: %s", c, errOut)
	}

	// The next start keeps the token.
	r := startServe(t, "--root", root, "--source", "local=http://127.0.0.1:1")
	again, _ := client.New("http://"+r.addr.String(), client.WithToken(token))
	if _, err := again.Health(t.Context()); err != nil {
		t.Fatalf("the token after a restart: %v", err)
	}
}

// unixGet sends GET path to the unix socket sock and returns the status.
func unixGet(sock, path string) (int, error) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://providerd" + path)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestNoRegistryImport: providerd shares the find rules and the model of
// the catalog (catalog/find, catalog/model) but not catalogd's registry
// or server.
func TestNoRegistryImport(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to list the imports with")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch pkg {
		case "github.com/containerprovider/containerprovider/catalog",
			"github.com/containerprovider/containerprovider/server/catalog":
			t.Errorf("providerd imports %s", pkg)
		}
	}
}
