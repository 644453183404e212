package main

import (
	"net"

	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/server/listener"
)

const defaultRunDirHelp = `unused on Windows: the APIs are the named pipes \\.\pipe\containerprovider and \\.\pipe\containerprovider_docker`

func defaultRunDir(string, func(string) string) string { return "" }

// socketGroup: on Windows the pipes' ACL names the Administrators group.
func socketGroup(string, *logrus.Logger) int { return -1 }

// listenSocket listens on the named pipe of the API, for the
// Administrators group and LocalSystem only.
func listenSocket(_, name string, _ int) (net.Listener, error) {
	pipe := `\\.\pipe\containerprovider`
	if name == "docker" {
		pipe += "_docker"
	}
	return listener.Pipe(pipe)
}
