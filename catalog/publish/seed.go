package publish

import (
	"context"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/signing"
)

// Default layer sizes of Seed.
const (
	DefaultBaseLayerSize = 4 << 20
	DefaultAppLayerSize  = 16 << 10
)

// SeedOptions are the settings of Seed.
type SeedOptions struct {
	// BaseLayerSize is the size of the files in each base OS image's
	// layer (default DefaultBaseLayerSize). The tar adds its headers.
	BaseLayerSize int64
	// AppLayerSize is the size of the files in each application image's
	// own layer (default DefaultAppLayerSize).
	AppLayerSize int64
	// Compression of the layers (default gzip). With CompressionNone a
	// layer blob is exactly the tar, which benchmarks want.
	Compression Compression
	// BaseHost, when set, is the registry host of the catalog, which the
	// application images' base.name then names (see WithBaseHost).
	BaseHost string
	// Signer, when set, signs every image (see WithSigner).
	Signer *signing.Signer
	// Progress, when set, is called after each image, in order, from the
	// goroutine that called Seed.
	Progress func(SeedItem)
}

// SeedItem is one image Seed published or found already there.
type SeedItem struct {
	Name       string
	Repository string
	Version    string
	Digest     digest.Digest
	// Size is the image's content size: manifest, config and layers.
	Size int64
	// Skipped is true when the catalog already held this image with the
	// same digest and tags: nothing was written.
	Skipped bool
}

// SeedReport lists the images of a Seed, in publishing order.
type SeedReport struct {
	Items []SeedItem
}

// Published counts the images that were written.
func (r SeedReport) Published() int {
	n := 0
	for _, it := range r.Items {
		if !it.Skipped {
			n++
		}
	}
	return n
}

// Skipped counts the images that were already there.
func (r SeedReport) Skipped() int { return len(r.Items) - r.Published() }

// seedImage is one image of the seed catalog.
type seedImage struct {
	name, repo, version, description string
	created                          time.Time
	latest                           bool
	app                              bool
}

// The publisher of every seeded image.
const seedPublisher = "CN=Microsoft"

// The fixed dates of the seeded images: Technical Preview 4, the Windows
// Server 2016 release, and the application images.
var (
	tp4Created  = time.Date(2015, 11, 19, 0, 0, 0, 0, time.UTC)
	rs1Created  = time.Date(2016, 10, 12, 0, 0, 0, 0, time.UTC)
	appsCreated = time.Date(2016, 11, 1, 0, 0, 0, 0, time.UTC)
)

const (
	appParent      = "windowsservercore:10.0.14393.0"
	appParentRepo  = "windowsservercore"
	appParentVer   = "10.0.14393.0"
	appVersion     = "1.0.0.0"
	appDescription = "installed in a Windows Server Core based container."
)

// seedBases are the base OS images of the reference documentation, at the
// Technical Preview 4 build it shows and at the Windows Server 2016 release.
var seedBases = []seedImage{
	{name: "NanoServer", repo: "nanoserver", version: "10.0.10586.0", created: tp4Created,
		description: "Container OS Image of Windows Server 2016 Technical Preview 4 : Nano Server"},
	{name: "NanoServer", repo: "nanoserver", version: "10.0.14393.0", created: rs1Created, latest: true,
		description: "Container OS Image of Windows Server 2016 : Nano Server"},
	{name: "WindowsServerCore", repo: "windowsservercore", version: "10.0.10586.0", created: tp4Created,
		description: "Container OS Image of Windows Server 2016 Technical Preview 4 : Windows Server Core"},
	{name: "WindowsServerCore", repo: "windowsservercore", version: "10.0.14393.0", created: rs1Created, latest: true,
		description: "Container OS Image of Windows Server 2016 : Windows Server Core"},
}

// seedApps are the application images of the documentation's docker search
// listing, with the descriptions it truncates written out in full.
var seedApps = []struct{ repo, description string }{
	{"microsoft/aspnet", "ASP.NET 5 framework " + appDescription},
	{"microsoft/django", "Django " + appDescription},
	{"microsoft/dotnet35", ".NET 3.5 Runtime " + appDescription},
	{"microsoft/golang", "Go Programming Language " + appDescription},
	{"microsoft/httpd", "Apache httpd " + appDescription},
	{"microsoft/iis", "Internet Information Services (IIS) " + appDescription},
	{"microsoft/mongodb", "MongoDB " + appDescription},
	{"microsoft/mysql", "MySQL " + appDescription},
	{"microsoft/nginx", "Nginx " + appDescription},
	{"microsoft/node", "Node " + appDescription},
	{"microsoft/php", "PHP running on Internet Information Services (IIS) in a Windows Server Core based container."},
	{"microsoft/python", "Python " + appDescription},
	{"microsoft/rails", "Ruby on Rails " + appDescription},
	{"microsoft/redis", "Redis " + appDescription},
	{"microsoft/ruby", "Ruby " + appDescription},
	{"microsoft/sqlite", "SQLite " + appDescription},
}

func seedCatalog() []seedImage {
	out := append([]seedImage(nil), seedBases...)
	for _, a := range seedApps {
		out = append(out, seedImage{
			name: a.repo, repo: a.repo, version: appVersion, description: a.description,
			created: appsCreated, latest: true, app: true,
		})
	}
	return out
}

// Seed publishes the catalog of the reference documentation into t:
//
//   - NanoServer (repository nanoserver) and WindowsServerCore
//     (windowsservercore), each at 10.0.10586.0 and 10.0.14393.0, publisher
//     CN=Microsoft, with layers of generated files;
//   - the 16 application images of the docker search listing
//     (microsoft/aspnet ... microsoft/sqlite), version 1.0.0.0, each built on
//     WindowsServerCore 10.0.14393.0 with a small layer of text files.
//
// The highest version of each repository is also tagged "latest". Content
// and dates are fixed, so the digests are the same on every machine for the
// same options. Seed is idempotent: an image already there with the same
// digest is reported Skipped and nothing is written for it.
//
// Seed stops at the first error and returns the report of what it did so
// far. Errors are those of Publish; bad options are errdefs.ErrInvalidArgument.
func Seed(ctx context.Context, t Target, o SeedOptions) (SeedReport, error) {
	var rep SeedReport
	if o.BaseLayerSize < 0 || o.AppLayerSize < 0 {
		return rep, fmt.Errorf("seed: layer sizes %d, %d: negative: %w", o.BaseLayerSize, o.AppLayerSize, errdefs.ErrInvalidArgument)
	}
	if o.BaseLayerSize == 0 {
		o.BaseLayerSize = DefaultBaseLayerSize
	}
	if o.AppLayerSize == 0 {
		o.AppLayerSize = DefaultAppLayerSize
	}
	var parent *parentImage
	for _, img := range seedCatalog() {
		spec := Spec{
			Name:        img.name,
			Repository:  img.repo,
			Version:     img.version,
			Publisher:   seedPublisher,
			Description: img.description,
			Created:     img.created,
		}
		opts := []Opt{WithCompression(o.Compression), WithBaseHost(o.BaseHost), WithSigner(o.Signer)}
		if img.latest {
			opts = append(opts, WithLatest())
		}
		if img.app {
			if parent == nil {
				rec, err := t.ResolveManifest(ctx, appParentRepo, appParentVer)
				if err != nil {
					return rep, fmt.Errorf("seed: parent %s: %w", appParent, err)
				}
				if parent, err = loadParent(ctx, t, appParentRepo, "WindowsServerCore", appParentVer, rec.Digest); err != nil {
					return rep, fmt.Errorf("seed: %w", err)
				}
			}
			spec.Parent = appParent
			spec.Layer = appLayer(img.repo, img.version, img.description, o.AppLayerSize)
			opts = append(opts, withParent(parent))
		} else {
			spec.Layer = GeneratedLayer(img.name+" "+img.version, o.BaseLayerSize)
		}
		out, err := publish(ctx, t, spec, opts...)
		if err != nil {
			return rep, fmt.Errorf("seed: %w", err)
		}
		item := SeedItem{
			Name:       img.name,
			Repository: img.repo,
			Version:    img.version,
			Digest:     out.record.Digest,
			Size:       out.record.ContentSize,
			Skipped:    !out.written,
		}
		rep.Items = append(rep.Items, item)
		if o.Progress != nil {
			o.Progress(item)
		}
	}
	return rep, nil
}
