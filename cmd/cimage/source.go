package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

var sourcesColumns = []column{
	{header: "Name", width: 16},
	{header: "Location", width: 32},
	{header: "Insecure", width: 10},
	{header: "Username"},
}

// formatSources is the table of source list.
func formatSources(sources []api.Source) string {
	rows := make([][]string, 0, len(sources))
	for _, s := range sources {
		rows = append(rows, []string{s.Name, s.Location, boolText(s.Insecure), s.Username})
	}
	return formatTable(sourcesColumns, rows)
}

func setupSourceAdd(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	insecure := f.Bool("insecure", false, "skip the TLS certificate check of an https source")
	username := f.String("username", "", "user name for the source's registry (with --password-stdin)")
	passwordStdin := f.Bool("password-stdin", false, "read the password from the first line of stdin")
	return func(ctx context.Context, c *client.Client, args []string) error {
		if len(args) != 2 {
			return cli.Usagef("source add takes NAME URL, got %q", args)
		}
		if (*username == "") != !*passwordStdin {
			return cli.Usagef("--username and --password-stdin go together")
		}
		src := api.Source{Name: args[0], Location: args[1], Insecure: *insecure, Username: *username}
		if *passwordStdin {
			password, err := cli.FirstLine(a.stdin)
			if err != nil {
				return fmt.Errorf("reading the password from stdin: %w", err)
			}
			src.Password = password
			if src.Password == "" {
				return cli.Usagef("--password-stdin: stdin holds no password")
			}
		}
		added, err := c.AddSource(ctx, src)
		if err != nil {
			return err
		}
		if g.output == outputJSON {
			return writeJSON(a.stdout, added)
		}
		_, err = fmt.Fprintf(a.stdout, "Added source %s (%s)\n", added.Name, added.Location)
		return err
	}
}

func setupSourceList(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	return func(ctx context.Context, c *client.Client, args []string) error {
		if len(args) > 0 {
			return cli.Usagef("source list takes no argument, got %q", args)
		}
		sources, err := c.Sources(ctx)
		if err != nil {
			return err
		}
		if g.output == outputJSON {
			return writeJSON(a.stdout, api.SourcesResponse{Sources: nonNil(sources)})
		}
		_, err = io.WriteString(a.stdout, formatSources(sources))
		return err
	}
}

func setupSourceRemove(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	return func(ctx context.Context, c *client.Client, args []string) error {
		name, err := oneArg("source remove", "NAME", args)
		if err != nil {
			return err
		}
		if err := c.RemoveSource(ctx, name); err != nil {
			return err
		}
		if g.output == outputJSON {
			return nil
		}
		_, err = fmt.Fprintf(a.stdout, "Removed source %s\n", name)
		return err
	}
}
