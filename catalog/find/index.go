package find

import (
	"context"
	"slices"
	"strings"
	"time"

	goversion "github.com/hashicorp/go-version"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/catalog"
)

// Lister lists every tag of a registry with its manifest.
// *catalog.Registry implements it.
type Lister interface {
	TaggedManifests(ctx context.Context) ([]catalog.TaggedManifest, error)
}

// LatestTag is the tag that OCI clients pull by default. It names no version.
const LatestTag = "latest"

// Index lists the images of src as Find entries, one per (repository,
// manifest digest), however many tags point at the manifest:
//
//   - Name is the org.opencontainers.image.title annotation, else the
//     repository, so that images pushed by generic clients (crane, oras)
//     without annotations appear under their repository name.
//   - Version is the org.opencontainers.image.version annotation, else the
//     highest tag that parses as a version, else a tag other than "latest"
//     (the first in lexical order), else "latest".
//   - Publisher, Description: the vendor and description annotations.
//   - Created: the created annotation (RFC 3339), else the push time.
//   - Size: the record's ContentSize; OSVersion: the record's OSVersion.
//   - IsOSImage: the manifest has neither base.name nor base.digest.
//   - Parent: from base.digest, the Name and Version of the entry with that
//     manifest digest; else from base.name ("repo:tag"), the Name of the
//     entry in that repository if there is one, and the tag as the version.
//
// The result is sorted like Filter's. Errors are those of src.
func Index(ctx context.Context, src Lister) ([]api.FindEntry, error) {
	tms, err := src.TaggedManifests(ctx)
	if err != nil {
		return nil, err
	}
	type key struct{ repo, digest string }
	type group struct {
		rec  catalog.ManifestRecord
		repo string
		tags []string
	}
	groups := map[key]*group{}
	var order []key
	for _, tm := range tms {
		k := key{tm.Repository, tm.Manifest.Digest.String()}
		g, ok := groups[k]
		if !ok {
			g = &group{rec: tm.Manifest, repo: tm.Repository}
			groups[k] = g
			order = append(order, k)
		}
		g.tags = append(g.tags, tm.Tag)
	}

	entries := make([]api.FindEntry, 0, len(order))
	for _, k := range order {
		g := groups[k]
		entries = append(entries, entryOf(g.repo, g.rec, g.tags))
	}

	// byDigest maps a digest, and "repo@digest", to an entry.
	byDigest := map[string]int{}
	byRepo := map[string]int{}
	for i, e := range entries {
		if _, ok := byDigest[e.Digest]; !ok {
			byDigest[e.Digest] = i
		}
		byDigest[e.Repository+"@"+e.Digest] = i
		if _, ok := byRepo[e.Repository]; !ok {
			byRepo[e.Repository] = i
		}
	}
	for i := range entries {
		g := groups[order[i]]
		entries[i].Parent = parentOf(g.rec.Annotations, entries, byDigest, byRepo)
		entries[i].IsOSImage = entries[i].Parent == nil
	}

	cs := make([]candidate, len(entries))
	for i, e := range entries {
		v, perr := goversion.NewVersion(e.Version)
		if perr != nil {
			v = nil
		}
		cs[i] = candidate{e: e, v: v}
	}
	slices.SortStableFunc(cs, compareCandidates)
	for i, c := range cs {
		entries[i] = c.e
	}
	return entries, nil
}

func entryOf(repo string, rec catalog.ManifestRecord, tags []string) api.FindEntry {
	a := rec.Annotations
	e := api.FindEntry{
		Name:        a[catalog.AnnotationTitle],
		Repository:  repo,
		Version:     a[catalog.AnnotationVersion],
		Description: a[catalog.AnnotationDescription],
		Publisher:   a[catalog.AnnotationVendor],
		Digest:      rec.Digest.String(),
		Size:        rec.ContentSize,
		Created:     rec.Pushed,
		OSVersion:   rec.OSVersion,
	}
	if strings.TrimSpace(e.Name) == "" {
		e.Name = repo
	}
	if strings.TrimSpace(e.Version) == "" {
		e.Version = versionFromTags(tags)
	}
	if c, ok := a[catalog.AnnotationCreated]; ok {
		if t, err := time.Parse(time.RFC3339, c); err == nil {
			e.Created = t
		}
	}
	return e
}

// versionFromTags picks the highest tag that parses as a version, else the
// first tag in lexical order other than "latest", else "latest".
func versionFromTags(tags []string) string {
	var best *goversion.Version
	bestTag := ""
	for _, t := range tags {
		if t == LatestTag {
			continue
		}
		v, err := goversion.NewVersion(t)
		if err != nil {
			continue
		}
		if best == nil || v.GreaterThan(best) || (v.Equal(best) && t < bestTag) {
			best, bestTag = v, t
		}
	}
	if best != nil {
		return bestTag
	}
	sorted := slices.Clone(tags)
	slices.Sort(sorted)
	for _, t := range sorted {
		if t != LatestTag {
			return t
		}
	}
	if len(sorted) > 0 {
		return sorted[0]
	}
	return ""
}

func parentOf(a map[string]string, entries []api.FindEntry, byDigest, byRepo map[string]int) *api.ParentRef {
	baseName := strings.TrimSpace(a[catalog.AnnotationBaseName])
	baseDigest := strings.TrimSpace(a[catalog.AnnotationBaseDigest])
	if baseName == "" && baseDigest == "" {
		return nil
	}
	repo, tag, refDigest := SplitReference(baseName)
	p := &api.ParentRef{Name: repo, Version: tag, Digest: baseDigest}
	if p.Digest == "" {
		p.Digest = refDigest
	}
	if p.Digest != "" {
		// The same manifest may sit in several repositories: prefer the
		// one base.name names.
		if i, ok := byDigest[repo+"@"+p.Digest]; ok {
			p.Name, p.Version, p.Publisher = entries[i].Name, entries[i].Version, entries[i].Publisher
			return p
		}
		if i, ok := byDigest[p.Digest]; ok {
			p.Name, p.Version, p.Publisher = entries[i].Name, entries[i].Version, entries[i].Publisher
			return p
		}
	}
	if i, ok := byRepo[repo]; ok && repo != "" {
		p.Name = entries[i].Name
	}
	return p
}

// SplitReference splits "repo:tag", "repo@digest" or "repo:tag@digest" into
// its parts. A colon only separates a tag after the last '/', so a registry
// host with a port ("host:5000/repo") stays in the repository.
func SplitReference(ref string) (repo, tag, dgst string) {
	repo = ref
	if i := strings.IndexByte(repo, '@'); i >= 0 {
		repo, dgst = repo[:i], repo[i+1:]
	}
	if i := strings.LastIndexByte(repo, ':'); i >= 0 && i > strings.LastIndexByte(repo, '/') {
		repo, tag = repo[:i], repo[i+1:]
	}
	return repo, tag, dgst
}
