// Command providerd is the provider daemon of ContainerProvider: it finds,
// installs, lists and removes container images on its host, and serves
// API v1 over HTTP for cimage, the PowerShell module and scripts.
//
//	providerd serve   serve API v1 and the Docker Engine API on unix sockets,
//	                  and API v1 on 127.0.0.1:5050 behind a bearer token
//
// Every flag has a PROVIDERD_* environment variable; `providerd -h` lists
// them all.
package main

import (
	"context"
	"io"
	"net"
	"os"

	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

// version is providerd's version, reported by /healthz; the build sets it
// with -ldflags "-X main.version=...".
var version = "dev"

// app is one run of providerd: its streams and environment, which tests
// replace.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// onListen, when set, is told the address serve listens on (tests
	// listen on port 0).
	onListen func(net.Addr)
	// onDockerListen, when set, is told the address of the Docker API
	// listener (--docker-listen).
	onDockerListen func(net.Addr)
	// onSockets, when set, is told the addresses of the unix sockets of
	// API v1 and of the Docker API.
	onSockets func(v1, docker net.Addr)
}

func (a *app) commands() []cli.Command {
	return []cli.Command{
		{Name: "serve", Summary: "serve API v1: find, install, list and remove container images", Notes: serveNotes, Setup: a.setupServe},
	}
}

// program is providerd's command line over a's streams and environment.
func (a *app) program() *cli.Program {
	return &cli.Program{
		Name:     "providerd",
		Intro:    "providerd finds, installs, lists and removes container images on this host, over HTTP API v1.",
		Commands: a.commands(),
		Footer:   "Exit status: 0 on success, 1 on a failure, 2 on a usage error, such as a --listen beyond loopback without TLS.\n",
		Stdout:   a.stdout,
		Stderr:   a.stderr,
		Getenv:   a.getenv,
	}
}

func main() {
	a := &app{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(a.main(context.Background(), os.Args[1:]))
}

// main runs the subcommand of args and returns the exit status: 0, 1 for
// a failure, 2 for a usage error (a refused --listen included).
func (a *app) main(ctx context.Context, args []string) int {
	return a.program().Run(ctx, args)
}
