package listener

import (
	"context"
	"net"
)

// Transport is how a connection reached the server.
type Transport string

// The transports.
const (
	// TransportUnix is a unix socket: its mode and group are the
	// credential, and the peer's identity is known.
	TransportUnix Transport = "unix"
	// TransportPipe is a Windows named pipe: its ACL is the credential.
	TransportPipe Transport = "pipe"
	// TransportTCP is TCP, with or without TLS: the bearer token is the
	// credential.
	TransportTCP Transport = "tcp"
)

// Peer is the process at the other end of a unix socket, from
// SO_PEERCRED: its effective uid and gid, and its pid, at the time it
// connected.
type Peer struct {
	UID, GID uint32
	PID      int32
}

type connKey struct{}

type connInfo struct {
	transport Transport
	peer      *Peer
}

// ConnContext is the ConnContext of every http.Server of this package: it
// records the transport of c and, for a unix socket, its peer.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	info := connInfo{transport: TransportTCP}
	switch c.LocalAddr().Network() {
	case "unix":
		info.transport = TransportUnix
		if p, err := peerOf(c); err == nil {
			info.peer = &p
		}
	case "pipe":
		info.transport = TransportPipe
	}
	return context.WithValue(ctx, connKey{}, info)
}

// TransportOf returns the transport of the request whose context is ctx,
// and false for a request that did not come through a server of this
// package.
func TransportOf(ctx context.Context) (Transport, bool) {
	info, ok := ctx.Value(connKey{}).(connInfo)
	return info.transport, ok
}

// PeerOf returns the peer of a request that came on a unix socket.
func PeerOf(ctx context.Context) (Peer, bool) {
	info, ok := ctx.Value(connKey{}).(connInfo)
	if !ok || info.peer == nil {
		return Peer{}, false
	}
	return *info.peer, true
}
