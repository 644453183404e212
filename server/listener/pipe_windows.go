package listener

import (
	"net"

	"github.com/Microsoft/go-winio"
)

// PipeSecurity is the security descriptor of the named pipes, dockerd's:
// full access for the Administrators group and LocalSystem, nobody else.
const PipeSecurity = "D:P(A;;GA;;;BA)(A;;GA;;;SY)"

// Pipe listens on the named pipe path (`\\.\pipe\NAME`) with
// PipeSecurity: on Windows, membership of the Administrators group is the
// credential, as it is for dockerd's `npipe:////./pipe/docker_engine`.
func Pipe(path string) (net.Listener, error) {
	return winio.ListenPipe(path, &winio.PipeConfig{SecurityDescriptor: PipeSecurity})
}
