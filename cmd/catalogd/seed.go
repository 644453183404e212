package main

import (
	"context"
	"fmt"

	"github.com/containerprovider/containerprovider/catalog/publish"
	"github.com/containerprovider/containerprovider/catalog/signing"
	"github.com/containerprovider/containerprovider/cmd/internal/cli"
)

type seedConfig struct {
	cli.DaemonFlags
	baseLayerSize int64
	appLayerSize  int64
	compression   string
	baseHost      string
	signKeyFlags
}

func (c *seedConfig) register(f *cli.FlagSet) {
	c.DaemonFlags.Register(f, rootUsage)
	f.SizeVar(&c.baseLayerSize, "base-layer-size", publish.DefaultBaseLayerSize, "size of the files in each base OS image's layer (bytes, or with a unit: 4MiB, 1GiB)")
	f.SizeVar(&c.appLayerSize, "app-layer-size", publish.DefaultAppLayerSize, "size of the files in each application image's own layer (bytes, or with a unit)")
	f.StringVar(&c.compression, "compression", "gzip", "layer compression: gzip or none")
	c.signKeyFlags.register(f, "sign-key", "sign every image with this private key `file` (cosign's format), as catalogd sign does")
	f.StringVar(&c.baseHost, "base-host", "", "the registry `host` clients reach this catalog by (catalog.example.com, 127.0.0.1:5000): the application images' org.opencontainers.image.base.name is then HOST/repo:version, fully qualified")
}

func (a *app) setupSeed(f *cli.FlagSet) func(context.Context, []string) error {
	c := &seedConfig{}
	c.register(f)
	return func(ctx context.Context, args []string) error {
		if len(args) > 0 {
			return cli.Usagef("unexpected arguments %q", args)
		}
		if err := c.DaemonFlags.Check(); err != nil {
			return err
		}
		comp, err := publish.ParseCompression(c.compression)
		if err != nil {
			return cli.UsageError{Err: err}
		}
		if c.baseLayerSize <= 0 || c.appLayerSize <= 0 {
			return cli.Usagef("--base-layer-size and --app-layer-size must be positive")
		}
		if c.baseHost != "" {
			if err := publish.CheckBaseHost(c.baseHost); err != nil {
				return cli.UsageError{Err: err}
			}
		}
		var signer *signing.Signer
		if c.key != "" {
			if signer, err = a.loadSigner(c.key, c.passwordStdin); err != nil {
				return err
			}
		}
		return a.seed(ctx, c, comp, signer)
	}
}

func (a *app) seed(ctx context.Context, c *seedConfig, comp publish.Compression, signer *signing.Signer) error {
	rt, err := openRoot(c.Root)
	if err != nil {
		return err
	}
	defer rt.Close()
	fmt.Fprintf(a.stdout, "seeding %s (base layers %s, application layers %s, %s)\n",
		c.Root, cli.HumanSize(c.baseLayerSize), cli.HumanSize(c.appLayerSize), comp)
	rep, err := publish.Seed(ctx, rt.reg, publish.SeedOptions{
		BaseLayerSize: c.baseLayerSize,
		AppLayerSize:  c.appLayerSize,
		Compression:   comp,
		BaseHost:      c.baseHost,
		Signer:        signer,
		Progress: func(it publish.SeedItem) {
			state := "published"
			if it.Skipped {
				state = "skipped  "
			}
			fmt.Fprintf(a.stdout, "  %s %-28s %-14s %s %10s\n", state, it.Repository, it.Version, it.Digest, cli.HumanSize(it.Size))
		},
	})
	fmt.Fprintf(a.stdout, "%d images: %d published, %d skipped (already there)\n", len(rep.Items), rep.Published(), rep.Skipped())
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}
