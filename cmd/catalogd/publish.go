package main

import (
	"context"
	"fmt"
	"os"

	"github.com/containerprovider/containerprovider/catalog/publish"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

type publishConfig struct {
	cli.DaemonFlags
	name        string
	repository  string
	version     string
	publisher   string
	description string
	parent      string
	dir         string
	layer       string
	baseHost    string
	signKeyFlags
}

func (c *publishConfig) register(f *cli.FlagSet) {
	c.DaemonFlags.Register(f, rootUsage)
	f.StringVar(&c.name, "name", "", "display name of the image, e.g. NanoServer (required)")
	f.StringVar(&c.repository, "repository", "", "OCI repository (default: the name in lower case)")
	f.StringVar(&c.version, "version", "", "version, normalised to four parts: 1.0 is 1.0.0.0 (required)")
	f.StringVar(&c.publisher, "publisher", "", "publisher, shown as CN=<publisher>")
	f.StringVar(&c.description, "description", "", "description")
	f.StringVar(&c.parent, "parent", "", "parent image: name or repository, with :version (default its latest); empty for a base OS image")
	f.StringVar(&c.dir, "dir", "", "directory to pack as the image's layer (exactly one of --dir and --layer)")
	f.StringVar(&c.layer, "layer", "", "layer file, a tar or a gzip-compressed tar, used as it is (exactly one of --dir and --layer)")
	c.signKeyFlags.register(f, "sign-key", "sign the image with this private key `file` (cosign's format), as catalogd sign does")
	f.StringVar(&c.baseHost, "base-host", "", "the registry `host` clients reach this catalog by: with a --parent, org.opencontainers.image.base.name is then HOST/repo:version, fully qualified")
}

// check validates the publish flags and returns the layer.
func (c *publishConfig) check(args []string) (publish.Layer, error) {
	if len(args) > 0 {
		return publish.Layer{}, cli.Usagef("unexpected arguments %q", args)
	}
	if err := c.DaemonFlags.Check(); err != nil {
		return publish.Layer{}, err
	}
	if c.name == "" || c.version == "" {
		return publish.Layer{}, cli.Usagef("--name and --version are required")
	}
	if c.baseHost != "" {
		if err := publish.CheckBaseHost(c.baseHost); err != nil {
			return publish.Layer{}, cli.UsageError{Err: err}
		}
	}
	switch {
	case (c.dir == "") == (c.layer == ""):
		return publish.Layer{}, cli.Usagef("give exactly one of --dir and --layer")
	case c.dir != "":
		if st, err := os.Stat(c.dir); err != nil {
			return publish.Layer{}, fmt.Errorf("--dir: %w", err)
		} else if !st.IsDir() {
			return publish.Layer{}, cli.Usagef("--dir %s is not a directory (use --layer for a layer file)", c.dir)
		}
		return publish.LayerFromPath(c.dir), nil
	default:
		if st, err := os.Stat(c.layer); err != nil {
			return publish.Layer{}, fmt.Errorf("--layer: %w", err)
		} else if st.IsDir() {
			return publish.Layer{}, cli.Usagef("--layer %s is a directory (use --dir to pack one)", c.layer)
		}
		return publish.LayerFromPath(c.layer), nil
	}
}

func (a *app) setupPublish(f *cli.FlagSet) func(context.Context, []string) error {
	c := &publishConfig{}
	c.register(f)
	return func(ctx context.Context, args []string) error {
		layer, err := c.check(args)
		if err != nil {
			return err
		}
		opts := []publish.Opt{publish.WithBaseHost(c.baseHost)}
		if c.key != "" {
			s, err := a.loadSigner(c.key, c.passwordStdin)
			if err != nil {
				return err
			}
			opts = append(opts, publish.WithSigner(s))
		}
		rt, err := openRoot(c.Root)
		if err != nil {
			return err
		}
		defer rt.Close()
		rec, err := publish.Publish(ctx, rt.reg, publish.Spec{
			Name:        c.name,
			Repository:  c.repository,
			Version:     c.version,
			Publisher:   c.publisher,
			Description: c.description,
			Parent:      c.parent,
			Layer:       layer,
		}, opts...)
		if err != nil {
			return fmt.Errorf("publish %s %s: %w", c.name, c.version, err)
		}
		fmt.Fprintln(a.stdout, rec.Digest)
		return nil
	}
}
