package main

import (
	"context"
	"fmt"
	"os"

	"github.com/containerprovider/containerprovider/catalog/publish"
)

type publishConfig struct {
	common
	name        string
	repository  string
	version     string
	publisher   string
	description string
	parent      string
	dir         string
	layer       string
}

func (c *publishConfig) register(f *flagSet) {
	c.common.register(f)
	f.stringVar(&c.name, "name", "", "display name of the image, e.g. NanoServer (required)")
	f.stringVar(&c.repository, "repository", "", "OCI repository (default: the name in lower case)")
	f.stringVar(&c.version, "version", "", "version, normalised to four parts: 1.0 is 1.0.0.0 (required)")
	f.stringVar(&c.publisher, "publisher", "", "publisher, shown as CN=<publisher>")
	f.stringVar(&c.description, "description", "", "description")
	f.stringVar(&c.parent, "parent", "", "parent image: name or repository, with :version (default its latest); empty for a base OS image")
	f.stringVar(&c.dir, "dir", "", "directory to pack as the image's layer (exactly one of --dir and --layer)")
	f.stringVar(&c.layer, "layer", "", "layer file, a tar or a gzip-compressed tar, used as it is (exactly one of --dir and --layer)")
}

// check validates the publish flags and returns the layer.
func (c *publishConfig) check(args []string) (publish.Layer, error) {
	if len(args) > 0 {
		return publish.Layer{}, usagef("unexpected arguments %q", args)
	}
	if err := c.common.check(); err != nil {
		return publish.Layer{}, usageError{err}
	}
	if c.name == "" || c.version == "" {
		return publish.Layer{}, usagef("--name and --version are required")
	}
	switch {
	case (c.dir == "") == (c.layer == ""):
		return publish.Layer{}, usagef("give exactly one of --dir and --layer")
	case c.dir != "":
		if st, err := os.Stat(c.dir); err != nil {
			return publish.Layer{}, fmt.Errorf("--dir: %w", err)
		} else if !st.IsDir() {
			return publish.Layer{}, usagef("--dir %s is not a directory (use --layer for a layer file)", c.dir)
		}
		return publish.LayerFromPath(c.dir), nil
	default:
		if st, err := os.Stat(c.layer); err != nil {
			return publish.Layer{}, fmt.Errorf("--layer: %w", err)
		} else if st.IsDir() {
			return publish.Layer{}, usagef("--layer %s is a directory (use --dir to pack one)", c.layer)
		}
		return publish.LayerFromPath(c.layer), nil
	}
}

func setupPublish(a *app, f *flagSet) func(context.Context, []string) error {
	c := &publishConfig{}
	c.register(f)
	return func(ctx context.Context, args []string) error {
		layer, err := c.check(args)
		if err != nil {
			return err
		}
		rt, err := openRoot(c.root)
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
		})
		if err != nil {
			return fmt.Errorf("publish %s %s: %w", c.name, c.version, err)
		}
		fmt.Fprintln(a.stdout, rec.Digest)
		return nil
	}
}
