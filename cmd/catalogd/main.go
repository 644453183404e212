// Command catalogd is the catalog server of ContainerProvider: it publishes
// versioned container images (base OS images and the application images
// built on them) over the OCI Distribution API, with a find extension that
// answers Find-ContainerImage in one request.
//
//	catalogd serve    serve the catalog over HTTP
//	catalogd seed     publish the base OS and application images of the reference
//	catalogd publish  publish one image from a directory or a layer file
//	catalogd passwd   set a user's password in the htpasswd file
//	catalogd keygen   make a signing key pair in cosign's format
//	catalogd sign     sign images, as cosign sign --key does
//
// Every flag has a CATALOGD_* environment variable; `catalogd -h` lists
// them all.
package main

import (
	"context"
	"io"
	"os"

	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

// rootUsage describes --root, which every subcommand has.
const rootUsage = "directory of the catalog: blobs, database and credentials"

// app is one run of catalogd: its streams and environment, which tests
// replace.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

func (a *app) commands() []cli.Command {
	return []cli.Command{
		{Name: "serve", Summary: "serve the catalog over the OCI Distribution API and the find extension", Setup: a.setupServe},
		{Name: "seed", Summary: "publish the base OS images and the application images of the reference documentation (runs on --root, not over HTTP)", Setup: a.setupSeed},
		{Name: "publish", Summary: "publish one image from a directory or a layer file and print its digest (runs on --root, not over HTTP)", Setup: a.setupPublish},
		{Name: "keygen", Summary: "make a signing key pair in cosign's format: PREFIX.key (encrypted, mode 0600) and PREFIX.pub", Setup: a.setupKeygen},
		{Name: "sign", Args: "NAME[:VERSION]...", Summary: "sign images in cosign's format, as cosign sign --key does (runs on --root, not over HTTP)", Setup: a.setupSign},
		{Name: "passwd", Args: "USER", Summary: "set USER's password, read from stdin, in the htpasswd file; a running catalogd takes it at its next authentication", Setup: a.setupPasswd},
	}
}

// program is catalogd's command line over a's streams and environment.
func (a *app) program() *cli.Program {
	return &cli.Program{
		Name:     "catalogd",
		Intro:    "catalogd publishes container images over the OCI Distribution API.",
		Commands: a.commands(),
		Stdout:   a.stdout,
		Stderr:   a.stderr,
		Getenv:   a.getenv,
	}
}

func main() {
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(a.main(context.Background(), os.Args[1:]))
}

// main runs the subcommand of args and returns the exit status: 0, 1 for
// a failure, 2 for a usage error.
func (a *app) main(ctx context.Context, args []string) int {
	return a.program().Run(ctx, args)
}
