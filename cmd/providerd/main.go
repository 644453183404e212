// Command providerd is the provider daemon of ContainerProvider: it finds,
// installs, lists and removes container images on its host, and serves
// API v1 over HTTP for cimage, the PowerShell module and scripts.
//
//	providerd serve   serve API v1 (127.0.0.1:5050 by default)
//
// Every flag has a PROVIDERD_* environment variable; `providerd -h` lists
// them all.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
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
}

// command is a subcommand: its name, its one-line summary, its flags and
// how it runs once they are parsed.
type command struct {
	name    string
	summary string
	setup   func(a *app, f *flagSet) func(ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{name: "serve", summary: "serve API v1: find, install, list and remove container images", setup: setupServe},
	}
}

func main() {
	a := &app{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(a.main(context.Background(), os.Args[1:]))
}

// main runs the subcommand of args and returns the exit status: 0, 1 for
// a failure, 2 for a usage error (a refused --listen included).
func (a *app) main(ctx context.Context, args []string) int {
	if len(args) == 0 {
		a.usage(a.stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		a.usage(a.stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		f := newFlagSet(c.name, a.getenv, a.stderr)
		run := c.setup(a, f)
		f.Usage = func() { a.commandUsage(f.Output(), c, f) }
		if err := f.parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintf(a.stderr, "providerd %s: %v\n", c.name, err)
			return 2
		}
		if err := run(ctx, f.Args()); err != nil {
			fmt.Fprintf(a.stderr, "providerd %s: %v\n", c.name, err)
			var ue usageError
			if errors.As(err, &ue) {
				return 2
			}
			return 1
		}
		return 0
	}
	fmt.Fprintf(a.stderr, "providerd: unknown command %q\n\n", args[0])
	a.usage(a.stderr)
	return 2
}

// usageError is a command line that parses but cannot run as given.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// usage prints every subcommand with its summary and its flags.
func (a *app) usage(w io.Writer) {
	fmt.Fprintf(w, "providerd finds, installs, lists and removes container images on this host, over HTTP API v1.\n\n")
	fmt.Fprintf(w, "Usage: providerd <command> [flags]\n\nCommands:\n")
	cmds := commands()
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	for _, c := range cmds {
		fmt.Fprintln(w)
		f := newFlagSet(c.name, a.getenv, w)
		c.setup(a, f)
		a.commandUsage(w, c, f)
	}
	fmt.Fprintf(w, "\nExit status: 0 on success, 1 on a failure, 2 on a usage error, such as a --listen beyond loopback without TLS and a token.\n")
}

// commandUsage prints the help of one subcommand.
func (a *app) commandUsage(w io.Writer, c command, f *flagSet) {
	fmt.Fprintf(w, "providerd %s [flags]\n  %s\n", c.name, c.summary)
	if c.name == "serve" {
		fmt.Fprint(w, serveNotes)
	}
	fmt.Fprintf(w, "\nFlags (each defaults to its $%s* environment variable when set):\n", envPrefix)
	f.SetOutput(w)
	f.PrintDefaults()
}
