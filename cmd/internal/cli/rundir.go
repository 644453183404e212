package cli

import (
	"os"
	"path/filepath"
)

// SystemRunDir is the run directory of a providerd that runs as root: its
// unix sockets are SystemRunDir/providerd.sock and SystemRunDir/docker.sock.
const SystemRunDir = "/run/containerprovider"

// The names of providerd's unix sockets in its run directory.
const (
	APISocket    = "providerd.sock"
	DockerSocket = "docker.sock"
)

// DefaultRunDir is where providerd keeps its sockets when --run-dir is not
// given: SystemRunDir for root, $XDG_RUNTIME_DIR/containerprovider for
// another user, else ROOT/run.
func DefaultRunDir(root string, getenv func(string) string) string {
	if os.Geteuid() == 0 {
		return SystemRunDir
	}
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "containerprovider")
	}
	return filepath.Join(root, "run")
}

// TokenFile is the file of the bearer token that providerd makes on first
// start, in its root.
func TokenFile(root string) string { return filepath.Join(root, "auth", "token") }
