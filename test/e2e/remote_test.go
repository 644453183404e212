package e2e

import (
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
	"strings"
	"testing"
	"time"
)

// selfSignedCert writes a certificate and key for 127.0.0.1.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
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
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestRemoteModeNeedsTLSAndToken: providerd refuses to listen beyond
// loopback without TLS (every TCP listener has the token); with TLS, a
// request without the token gets 401. The refusal happens before anything listens, so the wildcard
// address is never bound; the served case runs on 127.0.0.1.
func TestRemoteModeNeedsTLSAndToken(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedCert(t, dir)
	tokenFile := filepath.Join(dir, "token")
	const token = "s3cret-token-for-the-test"
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no TLS", nil},
		{"token file without TLS", []string{"--token-file", tokenFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args := append([]string{"serve", "--root", t.TempDir(), "--run-dir", runDir(t), "--listen", "0.0.0.0:0"}, tc.args...)
			out, err := exec.CommandContext(ctx, filepath.Join(binDir, "providerd"), args...).CombinedOutput()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("providerd started on 0.0.0.0 with %v (err %v):\n%s", tc.args, err, out)
			}
			if !strings.Contains(strings.ToLower(string(out)), "tls") {
				t.Fatalf("the refusal does not explain itself:\n%s", out)
			}
		})
	}

	p := &providerd{Addr: freeAddr(t), Root: t.TempDir()}
	p.args = []string{"serve", "--root", p.Root, "--run-dir", runDir(t), "--listen", p.Addr, "--source", "catalog=http://127.0.0.1:1",
		"--tls-cert", certFile, "--tls-key", keyFile, "--token-file", tokenFile}
	cmd := exec.Command(filepath.Join(binDir, "providerd"), p.args...)
	logf, _ := os.Create(filepath.Join(dir, "providerd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait(); logf.Close() })

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	get := func(auth string) int {
		req, _ := http.NewRequest(http.MethodGet, "https://"+p.Addr+"/v1/images", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(30 * time.Second)
	for get("Bearer "+token) != http.StatusOK {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("providerd with TLS and a token did not answer:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x", "Basic " + token} {
		if code := get(auth); code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d, want 401", auth, code)
		}
	}
}
