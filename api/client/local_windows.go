package client

import (
	"context"
	"net"
	"strings"

	"github.com/Microsoft/go-winio"
)

const defaultEndpoint = "npipe:////./pipe/containerprovider"

// localDialer dials a named pipe (npipe:////./pipe/NAME, as docker writes
// it) or a unix socket.
func localDialer(scheme, path string) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	if scheme == "unix" {
		return unixDialer(path), nil
	}
	pipe := strings.ReplaceAll(path, "/", `\`)
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		return winio.DialPipeContext(ctx, pipe)
	}, nil
}
