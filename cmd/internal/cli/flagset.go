// Package cli holds what the commands of ContainerProvider share: a flag
// set whose flags default to environment variables, a program of
// subcommands with its help and exit statuses, the flags of a daemon
// (--root, --log-format, --log-level) and the logger they build, byte
// sizes, and graceful HTTP serving.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// EnvPrefix starts the environment variable of every flag of program:
// CATALOGD_ for catalogd.
func EnvPrefix(program string) string {
	return strings.ToUpper(strings.ReplaceAll(program, "-", "_")) + "_"
}

// EnvName is the environment variable of the flag name of program:
// CATALOGD_LOG_LEVEL for catalogd's --log-level.
func EnvName(program, name string) string {
	return EnvPrefix(program) + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// FlagSet is a flag.FlagSet whose flags take their default from an
// environment variable (see EnvName), named in the help. Its StringVar,
// BoolVar, IntVar, Var and SizeVar do so; the methods of the embedded
// flag.FlagSet that they shadow do not. A variable that does not parse is
// reported by Parse, before the command line is read.
type FlagSet struct {
	*flag.FlagSet
	program string
	getenv  func(string) string
	envErrs []error
}

// NewFlagSet returns the flag set of the subcommand name of program. It
// reads the environment with getenv and writes errors and help to out.
func NewFlagSet(program, name string, getenv func(string) string, out io.Writer) *FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return &FlagSet{FlagSet: fs, program: program, getenv: getenv}
}

// Program is the name of the program the flags belong to.
func (f *FlagSet) Program() string { return f.program }

// Getenv reads the environment the flag set was made with.
func (f *FlagSet) Getenv(key string) string { return f.getenv(key) }

// EnvName is the environment variable of the flag name.
func (f *FlagSet) EnvName(name string) string { return EnvName(f.program, name) }

func (f *FlagSet) env(name string) (string, bool) {
	v := f.getenv(f.EnvName(name))
	return v, v != ""
}

func (f *FlagSet) envUsage(name, usage string) string { return usage + " [$" + f.EnvName(name) + "]" }

// envError records err, the error of the variable of flag name, for Parse.
// Each error of a joined error gets the variable's name.
func (f *FlagSet) envError(name string, err error) {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		f.envErrs = append(f.envErrs, fmt.Errorf("%s: %w", f.EnvName(name), e))
	}
}

// StringVar defines a string flag whose default is its variable, when set,
// else value.
func (f *FlagSet) StringVar(p *string, name, value, usage string) {
	if v, ok := f.env(name); ok {
		value = v
	}
	f.FlagSet.StringVar(p, name, value, f.envUsage(name, usage))
}

// BoolVar defines a boolean flag whose default is its variable (as
// strconv.ParseBool reads it), when set, else value.
func (f *FlagSet) BoolVar(p *bool, name string, value bool, usage string) {
	if v, ok := f.env(name); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("%s=%q: not a boolean", f.EnvName(name), v))
		} else {
			value = b
		}
	}
	f.FlagSet.BoolVar(p, name, value, f.envUsage(name, usage))
}

// IntVar defines an int flag whose default is its variable (a decimal
// number), when set, else value.
func (f *FlagSet) IntVar(p *int, name string, value int, usage string) {
	if v, ok := f.env(name); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("%s=%q: not a number", f.EnvName(name), v))
		} else {
			value = n
		}
	}
	f.FlagSet.IntVar(p, name, value, f.envUsage(name, usage))
}

// EnvSetter is implemented by a flag.Value whose environment variable does
// not read like one use on the command line, such as a list in one
// variable: Var calls SetEnv rather than Set.
type EnvSetter interface {
	SetEnv(s string) error
}

// Var defines a flag of any kind. When its variable is set, Var gives it to
// value.Set (value.SetEnv for an EnvSetter) before the flag is defined, so
// the help shows it as the default.
func (f *FlagSet) Var(value flag.Value, name, usage string) {
	if v, ok := f.env(name); ok {
		set := value.Set
		if e, ok := value.(EnvSetter); ok {
			set = e.SetEnv
		}
		if err := set(v); err != nil {
			f.envError(name, err)
		}
	}
	f.FlagSet.Var(value, name, f.envUsage(name, usage))
}

// Parse reports the variables that did not parse, all of them, then parses
// args.
func (f *FlagSet) Parse(args []string) error {
	if len(f.envErrs) > 0 {
		return errors.Join(f.envErrs...)
	}
	return f.FlagSet.Parse(args)
}
