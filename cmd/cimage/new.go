package main

import (
	"context"
	"flag"
	"io"
	"strings"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/client"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

func setupNew(a *app, g *globals, f *flag.FlagSet) func(context.Context, *client.Client, []string) error {
	var req api.CommitRequest
	f.StringVar(&req.Container, "container", "", "the container to build from: its id, id prefix or name (required)")
	f.StringVar(&req.Publisher, "publisher", "", "the publisher, stored as CN=<publisher> (required)")
	f.StringVar(&req.Name, "name", "", "the new image's name (required)")
	f.StringVar(&req.Version, "version", "", "the new image's version, padded to four parts: 1.0 is 1.0.0.0 (required)")
	f.StringVar(&req.Description, "description", "", "the new image's description")
	f.BoolVar(&req.Force, "force", false, "replace an image of the same name and version")
	return func(ctx context.Context, c *client.Client, args []string) error {
		if len(args) > 0 {
			return cli.Usagef("new takes flags only, got %q", args)
		}
		var missing []string
		for _, m := range []struct{ flag, value string }{
			{"--container", req.Container}, {"--publisher", req.Publisher}, {"--name", req.Name}, {"--version", req.Version},
		} {
			if m.value == "" {
				missing = append(missing, m.flag)
			}
		}
		if len(missing) > 0 {
			return cli.Usagef("new needs %s", strings.Join(missing, ", "))
		}
		img, err := c.Commit(ctx, req)
		if err != nil {
			return err
		}
		if g.output == outputJSON {
			return writeJSON(a.stdout, img)
		}
		_, err = io.WriteString(a.stdout, formatImages([]api.Image{img}))
		return err
	}
}
