package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// testProgram has a command that echoes its flag and arguments, and one
// that fails as its --fail flag says.
func testProgram(env map[string]string) (*Program, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	p := &Program{
		Name:  "tool",
		Intro: "tool does things.",
		Commands: []Command{
			{Name: "echo", Args: "WORD...", Summary: "print the words", Notes: "\n  Words are printed as given.\n",
				Setup: func(f *FlagSet) func(context.Context, []string) error {
					sep := ""
					f.StringVar(&sep, "sep", " ", "separator")
					return func(_ context.Context, args []string) error {
						fmt.Fprintln(&out, strings.Join(args, sep))
						return nil
					}
				}},
			{Name: "fail", Summary: "fail", Setup: func(f *FlagSet) func(context.Context, []string) error {
				usage := false
				f.BoolVar(&usage, "usage", false, "fail with a usage error")
				return func(context.Context, []string) error {
					if usage {
						return Usagef("bad %s", "idea")
					}
					return errors.New("boom")
				}
			}},
		},
		Footer: "Exit status: 0, 1 or 2.\n",
		Stdout: &out,
		Stderr: &errOut,
		Getenv: func(k string) string { return env[k] },
	}
	return p, &out, &errOut
}

const testHelp = `tool does things.

Usage: tool <command> [flags]

Commands:
  echo     print the words
  fail     fail

tool echo [flags] WORD...
  print the words

  Words are printed as given.

Flags (each defaults to its $TOOL_* environment variable when set):
  -sep string
    	separator [$TOOL_SEP] (default " ")

tool fail [flags]
  fail

Flags (each defaults to its $TOOL_* environment variable when set):
  -usage
    	fail with a usage error [$TOOL_USAGE]

Exit status: 0, 1 or 2.
`

func TestProgramRun(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		code    int
		stdout  string
		stderr  string // a prefix
		inError string // a part of stderr
	}{
		{name: "help", args: []string{"-h"}, stdout: testHelp},
		{name: "help word", args: []string{"help"}, stdout: testHelp},
		{name: "--help", args: []string{"--help"}, stdout: testHelp},
		{name: "no command", code: ExitUsage, stderr: testHelp},
		{name: "unknown command", args: []string{"dance"}, code: ExitUsage, stderr: "tool: unknown command \"dance\"\n\n" + testHelp},
		{name: "command help", args: []string{"echo", "-h"}, stderr: "tool echo [flags] WORD...\n  print the words\n\n  Words are printed as given.\n\nFlags"},
		{name: "runs with flags and arguments", args: []string{"echo", "--sep", "-", "a", "b"}, stdout: "a-b\n"},
		{name: "environment default", env: map[string]string{"TOOL_SEP": "+"}, args: []string{"echo", "a", "b"}, stdout: "a+b\n"},
		{name: "bad flag", args: []string{"echo", "--nope"}, code: ExitUsage, inError: "tool echo: flag provided but not defined: -nope\n"},
		{name: "bad variable", env: map[string]string{"TOOL_USAGE": "often"}, args: []string{"fail"}, code: ExitUsage,
			stderr: "tool fail: TOOL_USAGE=\"often\": not a boolean\n"},
		{name: "failure", args: []string{"fail"}, code: ExitFailure, stderr: "tool fail: boom\n"},
		{name: "usage error", args: []string{"fail", "--usage"}, code: ExitUsage, stderr: "tool fail: bad idea\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, out, errOut := testProgram(tc.env)
			if code := p.Run(context.Background(), tc.args); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			if out.String() != tc.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", out, tc.stdout)
			}
			if !strings.HasPrefix(errOut.String(), tc.stderr) || !strings.Contains(errOut.String(), tc.inError) {
				t.Errorf("stderr:\n%s\nwant it to start with:\n%s\nand hold %q", errOut, tc.stderr, tc.inError)
			}
		})
	}
}

func TestUsageError(t *testing.T) {
	base := errors.New("base")
	for _, tc := range []struct {
		name  string
		err   error
		usage bool
	}{
		{"Usagef", Usagef("--x %d: bad", 1), true},
		{"wrapped", fmt.Errorf("context: %w", UsageError{Err: base}), true},
		{"plain", base, false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsUsage(tc.err); got != tc.usage {
				t.Fatalf("IsUsage(%v) = %v, want %v", tc.err, got, tc.usage)
			}
		})
	}
	if err := (UsageError{Err: base}); !errors.Is(err, base) || err.Error() != "base" {
		t.Fatalf("UsageError hides its error: %v", err)
	}
}
