package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
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

// testCert is a certificate and its key, and the PEM file of the
// certificate.
type testCert struct {
	cert     *x509.Certificate
	key      *rsa.PrivateKey
	certFile string
	keyFile  string
}

// newTestCert makes an RSA certificate (RSA, since Mono, which runs the
// PowerShell module's C# in powershell_tls_test.go, reads no ECDSA key) for
// the IP addresses and DNS names of hosts, signed by parent, or
// self-signed when parent is nil; a CA when isCA.
func newTestCert(t *testing.T, dir, name string, parent *testCert, isCA bool, hosts ...string) *testCert {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCert{key: key, certFile: filepath.Join(dir, name+".pem"), keyFile: filepath.Join(dir, name+".key")}
	if c.cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// selfSignedCert writes a self-signed certificate and key for 127.0.0.1
// into dir, and returns their files and a pool that trusts it.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	c := newTestCert(t, dir, "providerd", nil, false, "127.0.0.1")
	pool = x509.NewCertPool()
	pool.AddCert(c.cert)
	return c.certFile, c.keyFile, pool
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
