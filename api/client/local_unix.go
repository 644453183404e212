//go:build !windows

package client

import (
	"context"
	"errors"
	"net"
)

const defaultEndpoint = "unix:///run/containerprovider/providerd.sock"

// localDialer dials a unix socket; named pipes are Windows's.
func localDialer(scheme, path string) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	if scheme != "unix" {
		return nil, errors.New("named pipes are only on Windows")
	}
	return unixDialer(path), nil
}
