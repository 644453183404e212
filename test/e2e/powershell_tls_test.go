package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The PowerShell module trusts the certificates of
// $env:CONTAINERPROVIDER_CA_FILE for an https endpoint through
// ContainerProvider.Tls.cs, which Add-Type compiles on Windows PowerShell
// (C# 5, .NET Framework) and PowerShell 7 alike. No PowerShell runs here,
// but Mono's C# compiler and runtime do: the test compiles that file at C#
// 5 with a small driver that makes one HTTPS request through
// HttpClientHandler.ServerCertificateCustomValidationCallback, as the
// module does, against a real providerd listening with TLS.

// psTLSDriver is the driver: it GETs URL and prints "status N", or "error
// TYPE: MESSAGE" and exits 1; with a PEM file, the module's callback
// trusts its certificates.
const psTLSDriver = `using System;
using System.Net.Http;
class Driver {
    static int Main(string[] args) {
        HttpClientHandler handler = new HttpClientHandler();
        if (args.Length > 1) {
            handler.ServerCertificateCustomValidationCallback = ContainerProvider.Tls.TrustAlso(args[1]);
        }
        try {
            HttpResponseMessage r = new HttpClient(handler).GetAsync(args[0]).GetAwaiter().GetResult();
            Console.WriteLine("status " + (int)r.StatusCode);
            return 0;
        } catch (Exception e) {
            while (e.InnerException != null) { e = e.InnerException; }
            Console.WriteLine("error " + e.GetType().Name + ": " + e.Message);
            return 1;
        }
    }
}
`

// TestPowerShellTrustedCertificates compiles ContainerProvider.Tls.cs and
// checks, against providerd with TLS, that the certificates of the file are
// trusted (a self-signed certificate, or the CA of the server's, by IP
// address and by DNS name), and that nothing else is: no file, an unrelated
// CA, and a certificate of the right CA, or the trusted self-signed one,
// for another host name. Mono checks no host name once the chain has
// failed, so the last two hold by the module's own check.
func TestPowerShellTrustedCertificates(t *testing.T) {
	mcs, err := exec.LookPath("mcs")
	if err != nil {
		t.Skip("Mono's C# compiler (mcs) is not installed: scripts/install-tools.sh mono installs it; ContainerProvider.Tls.cs is not compiled here without it")
	}
	mono, err := exec.LookPath("mono")
	if err != nil {
		t.Skip("the Mono runtime is not installed: scripts/install-tools.sh mono installs it")
	}
	dir := t.TempDir()
	driver := filepath.Join(dir, "driver.cs")
	if err := os.WriteFile(driver, []byte(psTLSDriver), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "driver.exe")
	tls := filepath.Join(repoRoot(t), "scripts", "ContainerImage", "ContainerProvider.Tls.cs")
	// C# 5: the language of Windows PowerShell's Add-Type.
	if out, err := exec.Command(mcs, "-langversion:5", "-warnaserror", "-r:System.Net.Http.dll", "-out:"+exe, driver, tls).CombinedOutput(); err != nil {
		t.Fatalf("mcs -langversion:5 %s: %v\n%s", tls, err, out)
	}

	ca := newTestCert(t, dir, "ca", nil, true)
	other := newTestCert(t, dir, "other-ca", nil, true)
	servers := map[string]*testCert{
		"issued":      newTestCert(t, dir, "issued", ca, false, "127.0.0.1", "localhost"),
		"self-signed": newTestCert(t, dir, "self-signed", nil, false, "127.0.0.1"),
		"other-host":  newTestCert(t, dir, "other-host", ca, false, "providerd.example"),
	}
	addr := map[string]string{}
	for name, c := range servers {
		p := startProviderd(t, "http://127.0.0.1:1", "", "--tls-cert", c.certFile, "--tls-key", c.keyFile)
		addr[name] = p.Addr
	}

	for _, tc := range []struct {
		name, server, host, trust, want string
	}{
		// A request without the token: 401 once TLS is through.
		{"the server's CA", "issued", "", ca.certFile, "status 401"},
		{"the server's CA, by DNS name", "issued", "localhost", ca.certFile, "status 401"},
		{"a self-signed certificate", "self-signed", "", servers["self-signed"].certFile, "status 401"},
		{"no file", "issued", "", "", "error "},
		{"an unrelated CA", "issued", "", other.certFile, "error "},
		{"the right CA, another host name", "other-host", "", ca.certFile, "error "},
		{"a self-signed certificate, another host name", "self-signed", "localhost", servers["self-signed"].certFile, "error "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			hostPort := addr[tc.server]
			if tc.host != "" {
				_, port, _ := net.SplitHostPort(hostPort)
				hostPort = net.JoinHostPort(tc.host, port)
			}
			args := []string{exe, "https://" + hostPort + "/v1/images"}
			if tc.trust != "" {
				args = append(args, tc.trust)
			}
			out, _ := exec.CommandContext(ctx, mono, args...).CombinedOutput()
			if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("trusting %q, GET on the %s server: %s, want %s…", filepath.Base(tc.trust), tc.server, got, tc.want)
			}
			t.Logf("%s", out)
		})
	}
}
