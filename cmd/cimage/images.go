package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/client"
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
	v.register(f)
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
		id := img.ID
		if len(id) > 12 {
			id = id[:12]
		}
		fmt.Fprintf(&b, "Removed %s %s (id %s)\n", img.Name, img.Version, id)
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
	v.register(f)
	id := f.String("id", "", "remove the image of this digest or id prefix (at least 4 hex) instead of a name")
	return func(ctx context.Context, c *client.Client, args []string) error {
		opts := client.RemoveOptions{VersionOptions: v.VersionOptions, ID: *id}
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
		res, err := c.Remove(ctx, opts)
		if err != nil {
			return err
		}
		if g.output == outputJSON {
			res.Removed = nonNil(res.Removed)
			return writeJSON(a.stdout, res)
		}
		_, err = io.WriteString(a.stdout, formatRemoved(res))
		return err
	}
}
