// Package listener is the one place where providerd's APIs meet the
// network: their unix sockets (a named pipe on Windows), their TCP
// listeners with or without TLS, the credential each one asks for, and the
// serving of them all until shutdown. API v1 and the Docker API both use it.
//
// The model is dockerd's. A unix socket is owned by root and a group, with
// mode 0660: the kernel lets only members of that group connect, so a
// connection on it carries its credential, and its peer's uid, gid and pid
// (SO_PEERCRED) are known to the handlers. A TCP listener, loopback
// included, carries no such thing: every request on it needs the bearer
// token, compared in constant time. A request without a credential gets 401
// and reaches no handler.
package listener
