// Command catalogd is the catalog server of ContainerProvider: it publishes
// versioned container images (base OS images and the application images
// built on them) over the OCI Distribution API, with a find extension that
// answers Find-ContainerImage in one request.
//
//	catalogd serve    serve the catalog over HTTP
//	catalogd seed     publish the base OS and application images of the reference
//	catalogd publish  publish one image from a directory or a layer file
//	catalogd passwd   set a user's password in the htpasswd file
//
// Every flag has a CATALOGD_* environment variable; `catalogd -h` lists
// them all.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// app is one run of catalogd: its streams and environment, which tests
// replace.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// command is a subcommand: its name, its one-line summary, its flags and
// how it runs once they are parsed.
type command struct {
	name    string
	args    string // what follows the flags, for the usage line
	summary string
	// setup registers the flags on f and returns the function that runs
	// the command with the arguments left after the flags.
	setup func(a *app, f *flagSet) func(ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{name: "serve", summary: "serve the catalog over the OCI Distribution API and the find extension", setup: setupServe},
		{name: "seed", summary: "publish the base OS images and the application images of the reference documentation (runs on --root, not over HTTP)", setup: setupSeed},
		{name: "publish", summary: "publish one image from a directory or a layer file and print its digest (runs on --root, not over HTTP)", setup: setupPublish},
		{name: "passwd", args: "USER", summary: "set USER's password, read from stdin, in the htpasswd file", setup: setupPasswd},
	}
}

func main() {
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	os.Exit(a.main(context.Background(), os.Args[1:]))
}

// main runs the subcommand of args and returns the exit status: 0, 1 for
// a failure, 2 for a usage error.
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
			fmt.Fprintf(a.stderr, "catalogd %s: %v\n", c.name, err)
			return 2
		}
		if err := run(ctx, f.Args()); err != nil {
			fmt.Fprintf(a.stderr, "catalogd %s: %v\n", c.name, err)
			var ue usageError
			if errors.As(err, &ue) {
				return 2
			}
			return 1
		}
		return 0
	}
	fmt.Fprintf(a.stderr, "catalogd: unknown command %q\n\n", args[0])
	a.usage(a.stderr)
	return 2
}

// usageError is a command line that parses but does not make sense.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// usage prints every subcommand with its summary and its flags.
func (a *app) usage(w io.Writer) {
	fmt.Fprintf(w, "catalogd publishes container images over the OCI Distribution API.\n\n")
	fmt.Fprintf(w, "Usage: catalogd <command> [flags]\n\nCommands:\n")
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
}

// commandUsage prints the help of one subcommand.
func (a *app) commandUsage(w io.Writer, c command, f *flagSet) {
	line := "catalogd " + c.name + " [flags]"
	if c.args != "" {
		line += " " + c.args
	}
	fmt.Fprintf(w, "%s\n  %s\n\nFlags (each defaults to its $%s* environment variable when set):\n", line, c.summary, envPrefix)
	f.SetOutput(w)
	f.PrintDefaults()
}

// oneLine reads the first line of r (at most 4 KiB), without its line
// break.
func oneLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
