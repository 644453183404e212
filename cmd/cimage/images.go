package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

// The columns of images: Get-ContainerImage's, at the reference's widths.
var imagesColumns = []column{
	{header: "Name", width: 24},
	{header: "Publisher", width: 16},
	{header: "Version", width: 16},
	{header: "IsOSImage"},
}

// formatImages is the table of images.
func formatImages(images []api.Image) string {
	rows := make([][]string, 0, len(images))
	for _, img := range images {
		rows = append(rows, []string{img.Name, img.Publisher, img.Version, boolText(img.IsOSImage)})
	}
	return formatTable(imagesColumns, rows)
}

// The columns of images --parent: the reference's
// `Get-ContainerImage | select Name, ParentImage`.
var parentColumns = []column{
	{header: "Name", width: 18},
	{header: "ParentImage"},
}

// parentImageText is a parent as PowerShell printed the ParentImage
// property:
//
//	ContainerImage (Name = 'NanoServer') [Publisher = 'CN=Microsoft', Version = '10.0.10586.0']
//
// and "" for a base OS image.
func parentImageText(p *api.ParentRef) string {
	if p == nil || p.Name == "" {
		return ""
	}
	return fmt.Sprintf("ContainerImage (Name = '%s') [Publisher = '%s', Version = '%s']", p.Name, p.Publisher, p.Version)
}

// formatParents is the table of images --parent.
func formatParents(images []api.Image) string {
	rows := make([][]string, 0, len(images))
	for _, img := range images {
		rows = append(rows, []string{img.Name, parentImageText(img.ParentImage)})
	}
	return formatTable(parentColumns, rows)
}

func setupImages(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	var v versionFlags
	v.register(f, g)
	parent := f.Bool("parent", false, "show the Name and ParentImage columns (Get-ContainerImage | select Name, ParentImage)")
	publisher := f.String("publisher", "", "only the images of this publisher, e.g. CN=Microsoft")
	childOf := f.String("child-of", "", "only the images whose parent is IMAGE: a name, name:version, a digest or an id prefix")
	return func(ctx context.Context, c *client.Client, args []string) error {
		if len(args) > 1 {
			return cli.Usagef("images takes at most one NAME, got %q", args)
		}
		opts := client.ImagesOptions{Publisher: *publisher, VersionOptions: v.VersionOptions, ChildOf: *childOf}
		if len(args) == 1 {
			opts.Name = args[0]
		}
		images, err := c.Images(ctx, opts)
		if err != nil {
			return err
		}
		if len(images) == 0 && opts.Name != "" && !find.HasWildcard(opts.Name) {
			// As Get-ContainerImage -Name, and as find: a name that
			// matches nothing is an error, in the words of remove and
			// save; a pattern that matches nothing is an empty answer.
			return fmt.Errorf("image %q is not installed%s: %w", opts.Name, versionSuffix(v.VersionOptions), errdefs.ErrNotFound)
		}
		if g.output == outputJSON {
			return writeJSON(a.stdout, api.ImagesResponse{Images: nonNil(images)})
		}
		table := formatImages(images)
		if *parent {
			table = formatParents(images)
		}
		_, err = io.WriteString(a.stdout, table)
		return err
	}
}

// formatRemoved is what remove prints: each image removed, then what the
// garbage collection freed.
func formatRemoved(res api.RemoveResult) string {
	var b strings.Builder
	for _, img := range res.Removed {
		fmt.Fprintf(&b, "Removed %s %s (id %s)\n", img.Name, img.Version, shortID(img.ID))
	}
	blobs := "blobs"
	if res.BlobsDeleted == 1 {
		blobs = "blob"
	}
	fmt.Fprintf(&b, "Freed %s (%d %s deleted).\n", cli.HumanSize(res.BytesFreed), res.BlobsDeleted, blobs)
	return b.String()
}

func setupRemove(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	var v versionFlags
	v.register(f, g)
	id := f.String("id", "", "remove the image of this digest or id prefix (at least 4 hex) instead of a name")
	force := f.Bool("force", false, "remove every image that NAME matches without asking (a wildcard, or several versions)")
	whatIf := f.Bool("what-if", false, "show what would be removed, and remove nothing")
	return func(ctx context.Context, c *client.Client, args []string) error {
		opts := client.RemoveOptions{VersionOptions: v.VersionOptions, ID: *id, Force: *force, WhatIf: *whatIf}
		switch {
		case *id != "" && len(args) > 0:
			return cli.Usagef("remove takes a NAME or --id, not both")
		case *id != "" && v.VersionOptions != (api.VersionOptions{}):
			return cli.Usagef("version options go with a NAME, not --id")
		case *id == "":
			name, err := oneArg("remove", "NAME (or --id ID)", args)
			if err != nil {
				return err
			}
			opts.Name = name
		}
		if *whatIf {
			// The plan of the removal once confirmed: every match.
			opts.Force = true
		}
		res, err := c.Remove(ctx, opts)
		var ce *client.Error
		if err != nil && errors.As(err, &ce) && len(ce.API.Matches) > 0 {
			if res, err = a.confirmRemoval(ctx, c, opts.Name, ce.API.Matches); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		if g.output == outputJSON {
			res.Removed = nonNil(res.Removed)
			return writeJSON(a.stdout, res)
		}
		if res.WhatIf {
			_, err = io.WriteString(a.stdout, formatWhatIf(res.Removed))
			return err
		}
		_, err = io.WriteString(a.stdout, formatRemoved(res))
		return err
	}
}

// confirmRemoval handles a name that matched several images without
// --force: it lists them on stderr and, when a person is there to answer,
// asks; a yes removes exactly the images listed, by their digests, so that
// an image installed meanwhile is not taken with them. Without a terminal,
// or on a no, nothing is removed (Conflict, exit 4).
func (a *app) confirmRemoval(ctx context.Context, c *client.Client, name string, matches []api.Image) (api.RemoveResult, error) {
	fmt.Fprintf(a.stderr, "%q matches %d installed images:\n", name, len(matches))
	for _, m := range matches {
		fmt.Fprintf(a.stderr, "  %s %s (id %s)\n", m.Name, m.Version, shortID(m.ID))
	}
	refused := fmt.Errorf("nothing removed: give --force to remove the %d images, or a version to remove one: %w", len(matches), errdefs.ErrConflict)
	if !a.interactive() {
		return api.RemoveResult{}, refused
	}
	fmt.Fprintf(a.stderr, "Remove these %d images? [y/N] ", len(matches))
	answer, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && answer == "" {
		fmt.Fprintln(a.stderr)
		return api.RemoveResult{}, refused
	}
	if s := strings.ToLower(strings.TrimSpace(answer)); s != "y" && s != "yes" {
		return api.RemoveResult{}, refused
	}
	ids := make([]string, len(matches))
	for i, m := range matches {
		ids[i] = m.Digest
	}
	return c.Remove(ctx, client.RemoveOptions{IDs: ids})
}

// formatWhatIf is what remove --what-if prints: each image it would remove.
func formatWhatIf(images []api.Image) string {
	var b strings.Builder
	for _, img := range images {
		fmt.Fprintf(&b, "What if: removing %s %s (id %s)\n", img.Name, img.Version, shortID(img.ID))
	}
	return b.String()
}
