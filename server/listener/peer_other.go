//go:build !linux

package listener

import (
	"errors"
	"net"
)

// peerOf is only known on Linux; elsewhere a unix socket's peer is not
// known, and what needs it (a path on the daemon host) is refused.
func peerOf(net.Conn) (Peer, error) {
	return Peer{}, errors.New("peer credentials are not available on this system")
}
