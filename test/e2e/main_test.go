// Package e2e starts the real binaries on loopback ports and drives them with
// real clients that this project did not write: crane, oras and the OCI
// distribution-spec conformance suite.
//
// The binaries come from $CP_BIN_DIR (make test sets it to bin/); without it
// TestMain builds them into a temporary directory. The clients come from
// $CP_TOOLS_DIR (make test installs them into .tools/bin) or from PATH; a
// test whose client is missing is skipped with the reason.
package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	binDir = os.Getenv("CP_BIN_DIR")
	if binDir == "" {
		dir, err := os.MkdirTemp("", "cp-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/catalogd", "./cmd/providerd", "./cmd/cimage")
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building the binaries:", err)
			return 1
		}
		binDir = dir
	}
	return m.Run()
}

// tool finds a third-party client, or skips the test and says why.
func tool(t *testing.T, name string) string {
	t.Helper()
	if dir := os.Getenv("CP_TOOLS_DIR"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Skipf("%s is not installed (neither in $CP_TOOLS_DIR nor on PATH); `make test` installs it with scripts/install-tools.sh", name)
	return ""
}

// startProcess starts a long-running third-party server, stopped when the
// test ends.
func startProcess(t *testing.T, bin string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(filepath.Join(t.TempDir(), filepath.Base(bin)+".log"))
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
			t.Logf("%s log:\n%s", filepath.Base(bin), b)
		}
	})
}

// waitHTTP waits up to 30 s for url to answer 200.
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within 30 s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
