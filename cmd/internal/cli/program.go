package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

// Exit statuses of every program: success, a failure, and a command line
// that cannot run as given.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// UsageError is a command line that parses but cannot run as given: the
// program exits with ExitUsage.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }

func (e UsageError) Unwrap() error { return e.Err }

// Usagef formats a UsageError.
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}

// IsUsage reports whether err is, or wraps, a UsageError.
func IsUsage(err error) bool {
	var ue UsageError
	return errors.As(err, &ue)
}

// Command is a subcommand of a Program.
type Command struct {
	Name    string
	Args    string // what follows the flags on the usage line; may be empty
	Summary string // one line
	// Notes, when set, is printed as it is between the summary and the
	// flags in the command's help.
	Notes string
	// Setup defines the command's flags on f and returns the function that
	// runs it, once they are parsed, with the arguments left after them.
	Setup func(f *FlagSet) func(ctx context.Context, args []string) error
}

// Program is a command made of subcommands, every flag of which has an
// environment variable (see FlagSet), and one run of it: its streams and
// environment.
type Program struct {
	Name     string // also the prefix of the environment variables: see EnvPrefix
	Intro    string // the first line of the help
	Commands []Command
	// Footer, when set, ends the help, after a blank line.
	Footer string

	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// Run runs the subcommand of args and returns the exit status: ExitOK,
// ExitFailure for a failure, ExitUsage for a usage error (a bad flag or
// variable, an unknown command, or a UsageError from the command). Errors
// go to Stderr as one line, "<program> <command>: <error>"; -h, -help,
// --help and help print the help on Stdout, and `<command> -h` the
// command's help on Stderr.
func (p *Program) Run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		p.Usage(p.Stderr)
		return ExitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		p.Usage(p.Stdout)
		return ExitOK
	}
	for _, c := range p.Commands {
		if c.Name != args[0] {
			continue
		}
		f := p.FlagSet(c, p.Stderr)
		run := c.Setup(f)
		f.Usage = func() { p.CommandUsage(f.Output(), c, f) }
		if err := f.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return ExitOK
			}
			fmt.Fprintf(p.Stderr, "%s %s: %v\n", p.Name, c.Name, err)
			return ExitUsage
		}
		if err := run(ctx, f.Args()); err != nil {
			fmt.Fprintf(p.Stderr, "%s %s: %v\n", p.Name, c.Name, err)
			if IsUsage(err) {
				return ExitUsage
			}
			return ExitFailure
		}
		return ExitOK
	}
	fmt.Fprintf(p.Stderr, "%s: unknown command %q\n\n", p.Name, args[0])
	p.Usage(p.Stderr)
	return ExitUsage
}

// FlagSet returns a new flag set of c, writing to out, without c's flags.
func (p *Program) FlagSet(c Command, out io.Writer) *FlagSet {
	return NewFlagSet(p.Name, c.Name, p.Getenv, out)
}

// Usage prints the help: every subcommand with its summary, then each
// one's help.
func (p *Program) Usage(w io.Writer) {
	fmt.Fprintf(w, "%s\n\n", p.Intro)
	fmt.Fprintf(w, "Usage: %s <command> [flags]\n\nCommands:\n", p.Name)
	for _, c := range p.Commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.Name, c.Summary)
	}
	for _, c := range p.Commands {
		fmt.Fprintln(w)
		f := p.FlagSet(c, w)
		c.Setup(f)
		p.CommandUsage(w, c, f)
	}
	if p.Footer != "" {
		fmt.Fprintf(w, "\n%s", p.Footer)
	}
}

// CommandUsage prints the help of c, whose flags are defined on f.
func (p *Program) CommandUsage(w io.Writer, c Command, f *FlagSet) {
	line := p.Name + " " + c.Name + " [flags]"
	if c.Args != "" {
		line += " " + c.Args
	}
	fmt.Fprintf(w, "%s\n  %s\n%s\nFlags (each defaults to its $%s* environment variable when set):\n", line, c.Summary, c.Notes, EnvPrefix(p.Name))
	f.SetOutput(w)
	f.PrintDefaults()
}
