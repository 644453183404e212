//go:build linux

package listener

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerprovider/containerprovider/api/errdefs"
)

// unixClient is an HTTP client whose every connection goes to sock.
func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
}

func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "api.sock")
	ln, err := Unix(sock, os.Getegid())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != SocketMode {
		t.Fatalf("socket mode %v, want a socket of %v", fi.Mode(), os.FileMode(SocketMode))
	}
	if _, err := Unix(sock, -1); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second listener on a socket in use: %v", err)
	}
	if ln.Addr().String() != sock {
		t.Fatalf("address %s, want %s", ln.Addr(), sock)
	}
	ln.Close()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("the socket is left after Close: %v", err)
	}
	// A socket left by a daemon that did not stop cleanly is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	ln, err = Unix(sock, -1)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	ln.Close()

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Unix(file, -1); err == nil {
		t.Fatal("listened over a regular file")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("the regular file was replaced")
	}
	if _, err := Unix(filepath.Join(dir, strings.Repeat("x", 120)), -1); err == nil || !strings.Contains(err.Error(), "shorter run directory") {
		t.Fatalf("a path too long for a socket: %v", err)
	}
}

func TestLookupGroup(t *testing.T) {
	if gid, err := LookupGroup("4242"); err != nil || gid != 4242 {
		t.Fatalf("numeric: %d, %v", gid, err)
	}
	if gid, err := LookupGroup("root"); err != nil || gid != 0 {
		t.Fatalf("root: %d, %v", gid, err)
	}
	if _, err := LookupGroup("no-such-group-here"); err == nil {
		t.Fatal("an unknown group resolved")
	}
}

// TestPolicyAndPeers serves one handler on a unix socket and on TCP: the
// socket's requests pass with their peer known, TCP's need the token.
func TestPolicyAndPeers(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	uln, err := Unix(sock, -1)
	if err != nil {
		t.Fatal(err)
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const token = "token-0123456789abcdef"
	policy := TokenPolicy(token, "send the token")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := policy.Check(r); err != nil {
			if !errdefs.IsUnauthenticated(err) {
				t.Errorf("policy error of class %v", err)
			}
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		tr, _ := TransportOf(r.Context())
		peer, ok := PeerOf(r.Context())
		fmt.Fprintf(w, "%s %v %d %d", tr, ok, peer.UID, peer.PID)
	})}
	var g Group
	g.Add(srv, uln, false)
	g.Add(srv, tln, false)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, 5*time.Second, nil) }()

	get := func(c *http.Client, url, auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get(unixClient(sock), "http://x/", "")
	want := fmt.Sprintf("unix true %d %d", os.Geteuid(), os.Getpid())
	if code != http.StatusOK || body != want {
		t.Fatalf("socket: %d %q, want 200 %q", code, body, want)
	}
	tcp := &http.Client{Timeout: 10 * time.Second}
	url := "http://" + tln.Addr().String() + "/"
	for _, auth := range []string{"", "Bearer wrong", "Basic " + token, "Bearer " + token + "x"} {
		if code, body := get(tcp, url, auth); code != http.StatusUnauthorized {
			t.Errorf("TCP with %q: %d %s", auth, code, body)
		}
	}
	if code, body := get(tcp, url, "Bearer "+token); code != http.StatusOK || body != "tcp false 0 0" {
		t.Fatalf("TCP with the token: %d %q", code, body)
	}

	cancel()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := net.Dial("unix", sock); err == nil {
		t.Fatal("the socket still answers after the shutdown")
	}
}

func TestPolicyWithoutToken(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	req.Header.Set("Authorization", "Bearer anything")
	req = req.WithContext(ConnContext(req.Context(), fakeConn{network: "tcp"}))
	if err := TokenPolicy("", "m").Check(req); !errors.Is(err, errdefs.ErrUnauthenticated) || !strings.Contains(err.Error(), "unix socket only") {
		t.Fatalf("TCP without a token configured: %v", err)
	}
	bare, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	if err := TokenPolicy("", "m").Check(bare); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Fatalf("a request served outside this package: %v", err)
	}
	if err := Open().Check(bare); err != nil {
		t.Fatalf("Open: %v", err)
	}
}

// fakeConn is a net.Conn of a network, for ConnContext.
type fakeConn struct {
	net.Conn
	network string
}

func (c fakeConn) LocalAddr() net.Addr { return fakeAddr(c.network) }

type fakeAddr string

func (a fakeAddr) Network() string { return string(a) }
func (a fakeAddr) String() string  { return "fake" }
