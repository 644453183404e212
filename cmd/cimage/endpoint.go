package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

// maxTokenFile bounds what is read of a token file.
const maxTokenFile = 4096

// defaultEndpoint is the unix socket of the providerd of this user, when
// one runs ($XDG_RUNTIME_DIR/containerprovider/providerd.sock for a user
// other than root), else that of the system's providerd
// (client.DefaultEndpoint).
func defaultEndpoint(getenv func(string) string) string {
	if os.Geteuid() != 0 {
		if d := getenv("XDG_RUNTIME_DIR"); d != "" {
			sock := filepath.Join(d, "containerprovider", cli.APISocket)
			if fi, err := os.Stat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
				return "unix://" + sock
			}
		}
	}
	return client.DefaultEndpoint
}

// isTCPEndpoint reports whether endpoint is reached over TCP, where the
// bearer token is the credential.
func isTCPEndpoint(endpoint string) bool {
	return !strings.HasPrefix(endpoint, "unix://") && !strings.HasPrefix(endpoint, "npipe://")
}

// tokenFromFile reads the token of a TCP endpoint: the first line of
// $CIMAGE_TOKEN_FILE, else of the token file that providerd makes in its
// default root, when this user may read it; "" otherwise, and providerd
// then says that the token is missing.
func tokenFromFile(getenv func(string) string) string {
	file := getenv("CIMAGE_TOKEN_FILE")
	if file == "" {
		root := cli.DefaultRoot("providerd", getenv)
		if root == "" {
			return ""
		}
		file = cli.TokenFile(root)
	}
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	b := make([]byte, maxTokenFile)
	n, _ := f.Read(b)
	line, _, _ := strings.Cut(string(b[:n]), "\n")
	return strings.TrimSpace(line)
}
