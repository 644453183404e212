package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	goversion "github.com/hashicorp/go-version"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/store/content"
)

// parentImage is a resolved parent: where it is, and its manifest and
// config, whose layers, diff_ids and history a child repeats.
type parentImage struct {
	repo, name, version string
	digest              digest.Digest
	manifest            ocispec.Manifest
	config              ocispec.Image
}

// Bounds on what is read of a parent.
const (
	maxManifestSize = 4 << 20
	maxConfigSize   = 8 << 20
)

// dockerManifestV2 is the Docker image manifest, which a parent pushed by a
// Docker client may be.
const dockerManifestV2 = "application/vnd.docker.distribution.manifest.v2+json"

// resolveParent finds the image ref names ("name" or "name:version", where
// name is a display name or a repository) among the catalog's images, and
// loads its manifest and config.
func resolveParent(ctx context.Context, t Target, ref string) (*parentImage, error) {
	ref = strings.TrimSpace(ref)
	name, ver := ref, ""
	if i := strings.LastIndexByte(ref, ':'); i >= 0 {
		name, ver = strings.TrimSpace(ref[:i]), strings.TrimSpace(ref[i+1:])
		if ver == "" {
			return nil, fmt.Errorf("parent %q: empty version: %w", ref, errdefs.ErrInvalidArgument)
		}
	}
	if name == "" || find.HasWildcard(name) {
		return nil, fmt.Errorf("parent %q: want a name or a repository without wildcards, with an optional :version: %w",
			ref, errdefs.ErrInvalidArgument)
	}

	opts := find.Options{Name: name}
	_, perr := goversion.NewVersion(ver)
	if ver != "" && perr == nil {
		opts.RequiredVersion = ver
	}
	matches, err := t.Find(ctx, opts)
	if err != nil && !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("parent %q: %w", ref, err)
	}
	if ver != "" && perr != nil {
		// A tag that is not a version ("latest", "stable"): match it
		// as text among the images whose version does not parse.
		var tagged []api.FindEntry
		for _, e := range matches {
			if e.Version == ver {
				tagged = append(tagged, e)
			}
		}
		matches = tagged
	}
	if len(matches) > 1 {
		// A repository is unique; a display name may not be.
		var exact []api.FindEntry
		for _, e := range matches {
			if e.Repository == strings.ToLower(name) {
				exact = append(exact, e)
			}
		}
		matches = exact
		if len(matches) != 1 {
			return nil, fmt.Errorf("parent %q: several images match; name the repository: %w", ref, errdefs.ErrInvalidArgument)
		}
	}
	if len(matches) == 0 {
		return nil, fmt.Errorf("parent %q: no such image in the catalog: %w", ref, errdefs.ErrNotFound)
	}
	e := matches[0]
	return loadParent(ctx, t, e.Repository, e.Name, e.Version, digest.Digest(e.Digest))
}

// loadParent reads the manifest and the config of repo@dgst.
func loadParent(ctx context.Context, t Target, repo, name, version string, dgst digest.Digest) (*parentImage, error) {
	what := fmt.Sprintf("parent %s:%s", repo, version)
	rec, ra, err := t.GetManifest(ctx, repo, dgst.String())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	body, err := readAll(ra, maxManifestSize)
	ra.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: manifest: %w", what, err)
	}
	if rec.MediaType != ocispec.MediaTypeImageManifest && rec.MediaType != dockerManifestV2 {
		return nil, fmt.Errorf("%s: a %s is not an image manifest: %w", what, rec.MediaType, errdefs.ErrInvalidArgument)
	}
	p := &parentImage{repo: repo, name: name, version: version, digest: rec.Digest}
	if err := json.Unmarshal(body, &p.manifest); err != nil {
		return nil, fmt.Errorf("%s: manifest: %v: %w", what, err, errdefs.ErrInvalidArgument)
	}
	cra, err := t.OpenBlob(ctx, repo, p.manifest.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("%s: config %s: %w", what, p.manifest.Config.Digest, err)
	}
	cfg, err := readAll(cra, maxConfigSize)
	cra.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: config: %w", what, err)
	}
	if err := json.Unmarshal(cfg, &p.config); err != nil {
		return nil, fmt.Errorf("%s: config: %v: %w", what, err, errdefs.ErrInvalidArgument)
	}
	if n, m := len(p.config.RootFS.DiffIDs), len(p.manifest.Layers); n != m {
		return nil, fmt.Errorf("%s: config has %d diff_ids for %d layers: %w", what, n, m, errdefs.ErrFailedPrecondition)
	}
	return p, nil
}

// readAll reads a whole blob of at most limit bytes.
func readAll(ra content.ReaderAt, limit int64) ([]byte, error) {
	if ra.Size() > limit {
		return nil, fmt.Errorf("%d bytes, more than %d: %w", ra.Size(), limit, errdefs.ErrTooLarge)
	}
	return io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
}
