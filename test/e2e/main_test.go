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
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
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
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/catalogd")
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
