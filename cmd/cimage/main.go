// Command cimage is the command-line client of providerd. Its commands
// mirror the ContainerImage cmdlets:
//
//	cimage find      Find-ContainerImage
//	cimage install   Install-ContainerImage
//	cimage images    Get-ContainerImage
//	cimage remove    Remove-ContainerImage
//	cimage save      Save-ContainerImage
//	cimage new       New-ContainerImage
//	cimage container the containers: create, list, start, stop, rm, cp
//	cimage jobs      the install jobs: list, show, attach, cancel
//	cimage source    the sources: add, list, remove
//
// `cimage -h` lists the commands, the global flags and the exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

// Exit codes.
const (
	exitOK       = cli.ExitOK
	exitError    = cli.ExitFailure
	exitUsage    = cli.ExitUsage
	exitNotFound = 3
	exitConflict = 4
	// exitUntrusted: a source's signature policy refused the image.
	exitUntrusted = 5
	exitDetached  = 130 // Ctrl-C: detached from a job, which goes on
)

const exitCodesHelp = `Exit codes:
  0    success
  1    error
  2    usage error (bad flags or arguments, such as a version that does not parse)
  3    not found (no such image, container, job, source or file)
  4    conflict (the image has dependents, the name is taken, the file exists)
  5    refused by a source's signature policy: no valid signature by a trusted key
  130  interrupted by Ctrl-C; an install or attach detached, and its job goes on
`

// app is one run of cimage: its streams, environment and signals, which
// tests replace.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// terminal reports whether w is a terminal (progress bars) or not
	// (plain lines).
	terminal func(w io.Writer) bool
	// interactive reports whether a person can answer a question: stdin
	// and stderr are terminals.
	interactive func() bool
	// interrupt returns a context that ends at Ctrl-C.
	interrupt func(ctx context.Context) (context.Context, context.CancelFunc)
	// loc is the time zone of the times printed.
	loc *time.Location
}

func main() {
	a := &app{
		stdin:    os.Stdin,
		stdout:   os.Stdout,
		stderr:   os.Stderr,
		getenv:   os.Getenv,
		terminal: isTerminal,
		interactive: func() bool {
			return isTerminal(os.Stdin) && isTerminal(os.Stderr)
		},
		interrupt: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return signal.NotifyContext(ctx, os.Interrupt)
		},
		loc: time.Local,
	}
	os.Exit(a.main(context.Background(), os.Args[1:]))
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// globals are the flags that come before the command (and may come after
// it too).
type globals struct {
	endpoint string
	token    string
	output   string
	// checks run once the command's flags are parsed; an error is a
	// usage error.
	checks []func() error
}

const (
	outputTable = "table"
	outputJSON  = "json"
)

// register adds the global flags to f, with their current values as
// defaults.
func (g *globals) register(f *flag.FlagSet, getenv func(string) string, fromEnv bool) {
	endpoint, token := g.endpoint, g.token
	if fromEnv {
		endpoint, token = defaultEndpoint(getenv), ""
		if v := getenv("CIMAGE_ENDPOINT"); v != "" {
			endpoint = v
		}
		token = getenv("CIMAGE_TOKEN")
		g.output = outputTable
	}
	f.StringVar(&g.endpoint, "endpoint", endpoint, "providerd's unix socket (unix:///path) or TCP URL (http://host:port, which needs the token) [$CIMAGE_ENDPOINT]")
	g.token = token
	f.Var(secretValue{&g.token}, "token", "bearer `token` of a TCP endpoint; default: the first line of $CIMAGE_TOKEN_FILE, else of providerd's ROOT/auth/token when this user may read it [$CIMAGE_TOKEN]")
	f.StringVar(&g.output, "output", g.output, "output format: table or json")
}

// secretValue is a string flag whose value never shows in the help.
type secretValue struct{ p *string }

func (v secretValue) String() string { return "" }

func (v secretValue) Set(s string) error {
	*v.p = s
	return nil
}

func (g *globals) check() error {
	if g.output != outputTable && g.output != outputJSON {
		return cli.Usagef("--output %q: want table or json", g.output)
	}
	for _, check := range g.checks {
		if err := check(); err != nil {
			return cli.UsageError{Err: err}
		}
	}
	return nil
}

// command is a command or a subcommand: its name, the arguments its usage
// line shows, its summary, and how it runs.
type command struct {
	name    string
	args    string
	summary string
	// setup registers the command's flags on f and returns the function
	// that runs it with the positional arguments.
	setup func(a *app, g *globals, f *flag.FlagSet) func(ctx context.Context, c *client.Client, args []string) error
	// subs are the subcommands; run, when set with subs, runs when no
	// subcommand is named (jobs lists the jobs).
	subs []command
	// notes, when set, follow the summary in the command's help.
	notes string
}

// ndjsonNote is the help of a command that follows a job.
const ndjsonNote = "With --output json it prints the job's events as NDJSON: one JSON object per line, as providerd streams them;\n" +
	"the last is the \"result\" event, whose \"job\" is final. An error is then a JSON object on stderr."

func commands() []command {
	return []command{
		{name: "find", args: "[NAME]", summary: "find images in the sources (Find-ContainerImage)", setup: setupFind},
		{name: "install", args: "NAME | --path FILE", summary: "install an image and its missing parents, following the job, or the images of a saved tar (Install-ContainerImage)", setup: setupInstall,
			notes: ndjsonNote + "\ninstall --path prints one object instead: the images installed."},
		{name: "images", args: "[NAME]", summary: "list the installed images (Get-ContainerImage)", setup: setupImages},
		{name: "remove", args: "NAME | --id ID", summary: "remove installed images and free their blobs (Remove-ContainerImage)", setup: setupRemove},
		{name: "save", args: "NAME --path DIR|FILE", summary: "save an image (or --id ID) and its parents to a tar, installed or straight from a source (Save-ContainerImage)", setup: setupSave},
		{name: "new", args: "--container REF ...", summary: "build an image from a container, on top of its image: --publisher, --name, --version (New-ContainerImage)", setup: setupNew},
		{name: "container", args: "create|list|...", summary: "manage the containers images are built from: create, list, start, stop, rm, cp", subs: []command{
			{name: "create", args: "IMAGE", summary: "create a container on an installed image", setup: setupContainerCreate},
			{name: "list", summary: "list the containers", setup: setupContainerList},
			{name: "start", args: "REF", summary: "set a container's state to Running (no process runs)", setup: setupContainerState("start")},
			{name: "stop", args: "REF", summary: "set a container's state to Stopped", setup: setupContainerState("stop")},
			{name: "rm", args: "REF", summary: "remove a container and its files", setup: setupContainerRemove},
			{name: "cp", args: "SRC|- REF:/dest", summary: "copy a local file or directory (or a tar on stdin) into a container, like docker cp", setup: setupContainerCopy},
		}},
		{name: "containers", summary: "list the containers (container list)", setup: setupContainerList},
		{name: "jobs", args: "[show|attach|cancel ID]", summary: "list the install jobs", setup: setupJobs, subs: []command{
			{name: "show", args: "ID", summary: "show a job and the progress of its blobs", setup: setupJobShow},
			{name: "attach", args: "ID", summary: "follow a running job to its end (Ctrl-C detaches again)", setup: setupJobAttach, notes: ndjsonNote},
			{name: "cancel", args: "ID", summary: "cancel a job; its downloaded data stays for a later install", setup: setupJobCancel},
		}},
		{name: "source", args: "add|list|refresh|remove", summary: "manage the sources images are found and installed from", subs: []command{
			{name: "add", args: "NAME URL", summary: "add an OCI registry or a catalogd as a source", setup: setupSourceAdd},
			{name: "list", summary: "list the sources and the state of providerd's index of each", setup: setupSourceList},
			{name: "refresh", args: "[NAME]", summary: "sync providerd's index of a source (of every source) now", setup: setupSourceRefresh},
			{name: "remove", args: "NAME", summary: "remove a source", setup: setupSourceRemove},
		}},
	}
}

// main runs the command line and returns the exit code.
func (a *app) main(ctx context.Context, args []string) int {
	ctx, stop := a.interrupt(ctx)
	defer stop()

	g := &globals{}
	gf := flag.NewFlagSet("cimage", flag.ContinueOnError)
	gf.SetOutput(io.Discard)
	g.register(gf, a.getenv, true)
	if err := gf.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.usage(a.stdout)
			return exitOK
		}
		return a.fail(g, cli.UsageError{Err: suggestFlag(gf, err)})
	}
	rest := gf.Args()
	if len(rest) == 0 {
		a.usage(a.stderr)
		return exitUsage
	}
	if rest[0] == "help" {
		a.usage(a.stdout)
		return exitOK
	}
	cmd, path, rest, ok := findCommand(commands(), rest)
	if !ok {
		if near := nearestCommand(path[0]); near != "" {
			fmt.Fprintf(a.stderr, "cimage: unknown command %q; did you mean %q? See cimage -h\n", path[0], near)
		} else {
			fmt.Fprintf(a.stderr, "cimage: unknown command %q; see cimage -h\n", strings.Join(path, " "))
		}
		return exitUsage
	}
	f := flag.NewFlagSet("cimage "+strings.Join(path, " "), flag.ContinueOnError)
	f.SetOutput(io.Discard)
	g.register(f, a.getenv, false)
	var run func(ctx context.Context, c *client.Client, args []string) error
	if cmd.setup != nil {
		run = cmd.setup(a, g, f)
	}
	positional, err := parseInterspersed(f, powerShellArgs(f, rest))
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.commandUsage(a.stdout, cmd, path, f)
			return exitOK
		}
		return a.fail(g, cli.UsageError{Err: suggestFlag(f, err)})
	}
	if run == nil {
		// A group without a default (container, source): it needs a
		// subcommand, which its help lists.
		if len(positional) > 0 {
			fmt.Fprintf(a.stderr, "cimage %s: unknown subcommand %q\n\n", cmd.name, positional[0])
		} else {
			fmt.Fprintf(a.stderr, "cimage %s: give a subcommand\n\n", cmd.name)
		}
		a.commandUsage(a.stderr, cmd, path, f)
		return exitUsage
	}
	if err := g.check(); err != nil {
		return a.fail(g, err)
	}
	if g.token == "" && isTCPEndpoint(g.endpoint) {
		g.token = tokenFromFile(a.getenv)
	}
	c, err := client.New(g.endpoint, client.WithToken(g.token), client.WithUserAgent("cimage"))
	if err != nil {
		return a.fail(g, cli.UsageError{Err: fmt.Errorf("--endpoint: %w", err)})
	}
	return a.fail(g, run(ctx, c, positional))
}

// findCommand walks args down the command tree: it returns the command,
// the names that led to it, and the arguments after them.
func findCommand(cmds []command, args []string) (command, []string, []string, bool) {
	for _, c := range cmds {
		if c.name != args[0] {
			continue
		}
		path, rest := []string{c.name}, args[1:]
		if len(c.subs) > 0 && len(rest) > 0 {
			for _, s := range c.subs {
				if s.name == rest[0] {
					return s, append(path, s.name), rest[1:], true
				}
			}
		}
		return c, path, rest, true
	}
	return command{}, args[:1], nil, false
}

// parseInterspersed parses flags anywhere among the positional arguments,
// as in `cimage install NanoServer --required-version 10.0.10586.0`, and
// returns the positional ones. "--" ends the flags.
func parseInterspersed(f *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for len(args) > 0 {
		if err := f.Parse(args); err != nil {
			return nil, err
		}
		rest := f.Args()
		if len(rest) == 0 {
			break
		}
		if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
			// flag.Parse stopped at "--": the rest is positional.
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	return positional, nil
}

// errDetached ends a followed job on Ctrl-C; the message was printed.
var errDetached = errors.New("detached")

// exitCode maps an error to the exit code.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errDetached), errors.Is(err, context.Canceled):
		return exitDetached
	case cli.IsUsage(err):
		return exitUsage
	case errorID(err) == api.IDSignatureNotTrusted:
		return exitUntrusted
	case errdefs.IsNotFound(err):
		return exitNotFound
	case errdefs.IsConflict(err), errdefs.IsAlreadyExists(err):
		return exitConflict
	default:
		return exitError
	}
}

// fail prints err on stderr and returns its exit code: one line
// `cimage: <message>` for people, or with --output json one object,
// {"error": {"class": ..., "message": ...}}, for scripts. A detach prints
// nothing: its message is printed already.
func (a *app) fail(g *globals, err error) int {
	code := exitCode(err)
	if err == nil || errors.Is(err, errDetached) {
		return code
	}
	if g.output == outputJSON {
		if werr := writeJSON(a.stderr, jsonError{Error: errorObject(g, err)}); werr == nil {
			return code
		}
	}
	fmt.Fprintf(a.stderr, "cimage: %s\n", errorLine(g, err))
	return code
}

// jsonError is an error under --output json.
type jsonError struct {
	Error jsonErrorBody `json:"error"`
}

// jsonErrorBody is the error's class (the API's error code, e.g.
// "NotFound"; "InvalidArgument" for a usage error), the message that the
// table output prints, and what providerd's envelope adds.
type jsonErrorBody struct {
	Class      string      `json:"class"`
	Message    string      `json:"message"`
	ID         string      `json:"id,omitempty"`
	Dependents []string    `json:"dependents,omitempty"`
	Matches    []api.Image `json:"matches,omitempty"`
	ExitCode   int         `json:"exitCode"`
}

func errorObject(g *globals, err error) jsonErrorBody {
	b := jsonErrorBody{Class: errorClass(err), Message: errorLine(g, err), ExitCode: exitCode(err), ID: errorID(err)}
	var ce *client.Error
	if errors.As(err, &ce) {
		b.Dependents, b.Matches = ce.API.Dependents, ce.API.Matches
	}
	return b
}

// errorClass is the API's code of err's class.
func errorClass(err error) string {
	switch {
	case cli.IsUsage(err):
		return api.CodeInvalidArgument
	case errors.Is(err, context.Canceled):
		return "Interrupted"
	}
	return api.ErrorCode(err)
}

// hintNoMatch follows an image that no source has: what cimage's user
// types next (the cmdlets say Get-PackageSource).
const hintNoMatch = "Run `cimage source list` to see the sources."

// errorLine is the one-line text of err without its class, with the
// dependents of a refused removal and a hint for the usual mistakes.
func errorLine(g *globals, err error) string {
	msg := api.ErrorMessage(err)
	var ce *client.Error
	if errors.As(err, &ce) {
		var missing []string
		for _, d := range ce.API.Dependents {
			if !strings.Contains(msg, d) {
				missing = append(missing, d)
			}
		}
		if len(missing) > 0 {
			msg += " (dependents: " + strings.Join(missing, ", ") + ")"
		}
	}
	var oe *net.OpError
	switch {
	case errors.Is(err, context.Canceled):
		msg = "interrupted"
	case errorID(err) == find.IDNoMatchFoundForCriteria:
		msg += " " + hintNoMatch
	case errdefs.IsUnauthenticated(err):
		msg += " (give the token with --token, $CIMAGE_TOKEN or $CIMAGE_TOKEN_FILE, or use providerd's unix socket)"
	case errors.As(err, &oe) && oe.Op == "dial":
		msg += fmt.Sprintf(" (is providerd running at %s? Set --endpoint or $CIMAGE_ENDPOINT)", g.endpoint)
	}
	return strings.Join(strings.Fields(msg), " ")
}

// errorID is the PackageManagement error id that providerd gave err, if
// any.
func errorID(err error) string {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.API.ID
	}
	var je *jobError
	if errors.As(err, &je) && je.job.Error != nil {
		return je.job.Error.ID
	}
	return ""
}

// usage prints the commands, the global flags and the exit codes.
func (a *app) usage(w io.Writer) {
	fmt.Fprintf(w, "cimage finds, installs, saves, lists, builds and removes container images through providerd.\n\n")
	fmt.Fprintf(w, "Usage: cimage [--endpoint unix:///PATH|URL] [--token T] [--output table|json] <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-30s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
		for _, s := range c.subs {
			fmt.Fprintf(w, "  %-30s %s\n", strings.TrimSpace(c.name+" "+s.name+" "+s.args), s.summary)
		}
	}
	fmt.Fprintf(w, "\nGlobal flags (before or after the command):\n")
	gf := flag.NewFlagSet("cimage", flag.ContinueOnError)
	(&globals{}).register(gf, a.getenv, true)
	gf.SetOutput(w)
	gf.PrintDefaults()
	fmt.Fprintf(w, "\nRun `cimage <command> -h` for the flags of a command.\n\n%s", exitCodesHelp)
}

// commandUsage prints the help of one command: its usage line, its
// subcommands, its flags and the exit codes.
func (a *app) commandUsage(w io.Writer, c command, path []string, f *flag.FlagSet) {
	args := c.args
	if c.setup == nil && len(c.subs) > 0 {
		args = "<subcommand>"
	}
	fmt.Fprintf(w, "Usage: cimage %s [flags]\n  %s\n", strings.TrimSpace(strings.Join(path, " ")+" "+args), c.summary)
	if c.notes != "" {
		fmt.Fprintf(w, "\n%s\n", c.notes)
	}
	if len(c.subs) > 0 {
		fmt.Fprintf(w, "\nSubcommands (`cimage %s <subcommand> -h` for their flags):\n", c.name)
		for _, s := range c.subs {
			fmt.Fprintf(w, "  %-30s %s\n", strings.TrimSpace(c.name+" "+s.name+" "+s.args), s.summary)
		}
	}
	fmt.Fprintf(w, "\nFlags:\n")
	f.SetOutput(w)
	f.PrintDefaults()
	fmt.Fprintf(w, "\n%s", exitCodesHelp)
}
