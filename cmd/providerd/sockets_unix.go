//go:build unix

package main

import (
	"net"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/cmd/internal/cli"
	"github.com/containerprovider/containerprovider/server/listener"
)

const defaultRunDirHelp = cli.SystemRunDir + " for root, else $XDG_RUNTIME_DIR/containerprovider, else ROOT/run"

func defaultRunDir(root string, getenv func(string) string) string {
	return cli.DefaultRunDir(root, getenv)
}

// socketGroup resolves --socket-group. A group the system does not know
// leaves the sockets to the daemon's own group (root alone, for a daemon
// that runs as root), with a warning that says how to open them.
func socketGroup(group string, log *logrus.Logger) int {
	gid, err := listener.LookupGroup(group)
	if err != nil {
		log.WithField("socket_group", group).WithError(err).
			Warnf("no group %q: the sockets are for root (or the daemon's user) alone; make it with `groupadd --system %s`, add users to it and restart, or give --socket-group", group, group)
		return -1
	}
	return gid
}

// listenSocket listens on RUN-DIR/NAME.sock.
func listenSocket(runDir, name string, gid int) (net.Listener, error) {
	file := cli.APISocket
	if name == "docker" {
		file = cli.DockerSocket
	}
	return listener.Unix(filepath.Join(runDir, file), gid)
}
