package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

// The columns of find: Find-ContainerImage's Name, Version and
// Description at the reference's widths, with the source in between. The
// description is cut at 50 characters with "...", as PowerShell cut
// "Container OS Image of Windows Server 2016 Techn...".
var findColumns = []column{
	{header: "Name", width: 21},
	{header: "Version", width: 24},
	{header: "Source", width: 12},
	{header: "Description", max: 50},
}

// formatFind is the table of find. When an entry's source checks
// signatures, a Signature column says which images its registry holds a
// signature for ("present", verified at install) and which it does not
// ("none": under a required policy, install refuses them).
func formatFind(entries []api.FindEntry) string {
	policy := slices.ContainsFunc(entries, func(e api.FindEntry) bool { return e.Policy != "" })
	cols := findColumns
	if policy {
		cols = append(slices.Clone(findColumns[:3]), column{header: "Signature", width: 11}, findColumns[3])
	}
	rows := make([][]string, 0, len(entries))
	for _, e := range entries {
		if !policy {
			rows = append(rows, []string{e.Name, e.Version, e.Source, e.Description})
			continue
		}
		sig := ""
		switch {
		case e.Policy != "" && e.Signatures:
			sig = "present"
		case e.Policy != "":
			sig = "none"
		}
		rows = append(rows, []string{e.Name, e.Version, e.Source, sig, e.Description})
	}
	return formatTable(cols, rows)
}

func setupFind(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	var v versionFlags
	v.register(f, g)
	source := f.String("source", "", "search this source only")
	return func(ctx context.Context, c *client.Client, args []string) error {
		if len(args) > 1 {
			return cli.Usagef("find takes at most one NAME, got %q", args)
		}
		opts := client.FindOptions{VersionOptions: v.VersionOptions, Source: *source}
		if len(args) == 1 {
			opts.Name = args[0]
		}
		res, err := c.Find(ctx, opts)
		if err != nil {
			return err
		}
		if g.output == outputJSON {
			res.Images = nonNil(res.Images)
			return writeJSON(a.stdout, res)
		}
		// As PowerShell's Write-Warning: on its own stream, before the
		// table.
		for _, w := range res.Warnings {
			fmt.Fprintf(a.stderr, "WARNING: %s\n", w)
		}
		_, err = io.WriteString(a.stdout, formatFind(res.Images))
		return err
	}
}

// nonNil makes an empty list print as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// oneArg checks that args is exactly one argument, named what.
func oneArg(cmd, what string, args []string) (string, error) {
	if len(args) != 1 || args[0] == "" {
		return "", cli.Usagef("%s takes one %s, got %q", cmd, what, args)
	}
	return args[0], nil
}
