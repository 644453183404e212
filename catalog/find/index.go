package find

import (
	"slices"
	"strings"
	"time"

	goversion "github.com/hashicorp/go-version"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api"
)

// LatestTag is the tag that OCI clients pull by default. It names no version.
const LatestTag = "latest"

// The Docker media types that image-spec does not define.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	// MediaTypeDockerForeignLayer is Docker's non-distributable layer, used
	// by Windows base images.
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// Manifest is what the find rules read of one manifest of a repository:
// the tags that point at it, its annotations and what the registry learnt
// of its content. Tags holds at least one tag: an untagged manifest is no
// entry.
type Manifest struct {
	Repository  string
	Digest      string
	Tags        []string
	Annotations map[string]string
	// Size is the manifest's size plus its config's and layers' (an
	// index's, plus its manifests').
	Size      int64
	OSVersion string
	// Pushed is when the registry stored the manifest.
	Pushed time.Time
	// Signatures: the repository has the manifest's cosign signature tag
	// (see SignatureTag).
	Signatures bool
}

// SignatureTag is cosign's tag of the signatures of the manifest d,
// "sha256-<hex>.sig", in the manifest's repository.
func SignatureTag(d string) string {
	return strings.Replace(d, ":", "-", 1) + ".sig"
}

// SignatureTarget is the digest of the manifest that a signature tag
// names, or false for a tag that is none.
func SignatureTarget(tag string) (string, bool) {
	hex, ok := strings.CutSuffix(tag, ".sig")
	if !ok || !strings.HasPrefix(hex, "sha256-") {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, strings.TrimPrefix(hex, "sha256-"))
	return d.String(), d.Validate() == nil
}

// Tagged is one tag and the manifest it points at, as a registry lists
// them; Group turns a list of them into Manifests.
type Tagged struct {
	Tag      string
	Manifest Manifest // Tags is ignored
}

// Group gathers tags by repository and manifest digest, in the order of
// their first tag.
func Group(ts []Tagged) []Manifest {
	type key struct{ repo, digest string }
	at := map[key]int{}
	var out []Manifest
	for _, t := range ts {
		k := key{t.Manifest.Repository, t.Manifest.Digest}
		i, ok := at[k]
		if !ok {
			i = len(out)
			at[k] = i
			m := t.Manifest
			m.Tags = nil
			out = append(out, m)
		}
		out[i].Tags = append(out[i].Tags, t.Tag)
	}
	return out
}

// IsImage reports whether a manifest is an image that Find lists, rather
// than an artifact or a referrer: an OCI or Docker image manifest whose
// config is an image config and whose layers are all image layers (tar,
// compressed or not, or non-distributable), or an index or manifest list;
// in both cases with no artifactType other than the image config's and no
// subject. Signatures, attestations and SBOMs (cosign's sha256-<hex>.sig,
// .att and .sbom tags, or referrers with a subject) and oras artifacts are
// not images.
func IsImage(mediaType, artifactType, configMediaType string, layerMediaTypes []string, hasSubject bool) bool {
	if hasSubject || (artifactType != "" && artifactType != ocispec.MediaTypeImageConfig) {
		return false
	}
	switch mediaType {
	case ocispec.MediaTypeImageIndex, MediaTypeDockerManifestList:
		return true
	case ocispec.MediaTypeImageManifest, MediaTypeDockerManifest:
	default:
		return false
	}
	if configMediaType != ocispec.MediaTypeImageConfig && configMediaType != MediaTypeDockerConfig {
		return false
	}
	for _, mt := range layerMediaTypes {
		if !IsLayer(mt) {
			return false
		}
	}
	return true
}

// IsLayer reports whether mt is the media type of an image layer.
func IsLayer(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
		ocispec.MediaTypeImageLayerNonDistributable, ocispec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck // still published
		ocispec.MediaTypeImageLayerNonDistributableZstd, //nolint:staticcheck // still published
		MediaTypeDockerLayer, MediaTypeDockerForeignLayer:
		return true
	}
	return false
}

// Entry is the Find entry of m, without its parent (see Parent):
//
//   - Name is the org.opencontainers.image.title annotation, else the
//     repository, so that images pushed by generic clients (crane, oras)
//     without annotations appear under their repository name.
//   - Version is the org.opencontainers.image.version annotation, else the
//     highest tag that parses as a version, else a tag other than "latest"
//     (the first in lexical order), else "latest".
//   - Publisher, Description: the vendor and description annotations.
//   - Created: the created annotation (RFC 3339), else the push time.
//   - IsOSImage: the manifest has neither base.name nor base.digest.
func Entry(m Manifest) api.FindEntry {
	a := m.Annotations
	e := api.FindEntry{
		Name:        a[AnnotationTitle],
		Repository:  m.Repository,
		Version:     a[AnnotationVersion],
		Description: a[AnnotationDescription],
		Publisher:   a[AnnotationVendor],
		Digest:      m.Digest,
		Size:        m.Size,
		Created:     m.Pushed,
		OSVersion:   m.OSVersion,
		Signatures:  m.Signatures,
	}
	if strings.TrimSpace(e.Name) == "" {
		e.Name = m.Repository
	}
	if strings.TrimSpace(e.Version) == "" {
		e.Version = versionFromTags(m.Tags)
	}
	if c, ok := a[AnnotationCreated]; ok {
		if t, err := time.Parse(time.RFC3339, c); err == nil {
			e.Created = t
		}
	}
	name, dgst := BaseOf(a)
	e.IsOSImage = name == "" && dgst == ""
	return e
}

// BaseOf is the base image that annotations name, trimmed; both empty for
// a base OS image.
func BaseOf(a map[string]string) (name, dgst string) {
	return strings.TrimSpace(a[AnnotationBaseName]), strings.TrimSpace(a[AnnotationBaseDigest])
}

// Entries looks up the entries that a parent can resolve to.
type Entries interface {
	// WithDigest is the entry of repository repo and manifest digest
	// dgst; with repo empty, the entry of that digest in the repository
	// that comes first in byte order.
	WithDigest(repo, dgst string) (api.FindEntry, bool)
	// InRepository is the entry of repo with the smallest digest.
	InRepository(repo string) (api.FindEntry, bool)
}

// Parent resolves the base image that the annotations baseName and
// baseDigest (see BaseOf) name: from the digest, the Name, Version and
// Publisher of the entry with that manifest digest, preferring the
// repository that baseName names; else from baseName ("repo:tag"), the
// Name of an entry of that repository, and the tag as the version. nil
// for a base OS image.
func Parent(baseName, baseDigest string, es Entries) *api.ParentRef {
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
		e, ok := es.WithDigest(repo, p.Digest)
		if !ok && repo != "" {
			e, ok = es.WithDigest("", p.Digest)
		}
		if ok {
			p.Name, p.Version, p.Publisher = e.Name, e.Version, e.Publisher
			return p
		}
	}
	if repo != "" {
		if e, ok := es.InRepository(repo); ok {
			p.Name = e.Name
		}
	}
	return p
}

// Index is the list of Find entries of ms, parents resolved among them,
// sorted like Filter's result. It is the reference that a stored index
// must agree with.
func Index(ms []Manifest) []api.FindEntry {
	es := &memEntries{byKey: map[[2]string]int{}, byDigest: map[string]int{}, byRepo: map[string]int{}}
	var bases [][2]string
	for _, m := range ms {
		if len(m.Tags) == 0 {
			continue
		}
		es.add(Entry(m))
		name, dgst := BaseOf(m.Annotations)
		bases = append(bases, [2]string{name, dgst})
	}
	out := slices.Clone(es.list)
	for i, b := range bases {
		out[i].Parent = Parent(b[0], b[1], es)
	}
	return Sort(out)
}

// Sort sorts entries as Filter does, in place, and returns them.
func Sort(entries []api.FindEntry) []api.FindEntry {
	cs := make([]candidate, len(entries))
	for i, e := range entries {
		cs[i] = newCandidate(e)
	}
	slices.SortStableFunc(cs, compareCandidates)
	for i, c := range cs {
		entries[i] = c.e
	}
	return entries
}

// memEntries is Entries over a list.
type memEntries struct {
	list     []api.FindEntry
	byKey    map[[2]string]int
	byDigest map[string]int
	byRepo   map[string]int
}

func (m *memEntries) add(e api.FindEntry) {
	i := len(m.list)
	m.list = append(m.list, e)
	m.byKey[[2]string{e.Repository, e.Digest}] = i
	if j, ok := m.byDigest[e.Digest]; !ok || e.Repository < m.list[j].Repository {
		m.byDigest[e.Digest] = i
	}
	if j, ok := m.byRepo[e.Repository]; !ok || e.Digest < m.list[j].Digest {
		m.byRepo[e.Repository] = i
	}
}

func (m *memEntries) WithDigest(repo, dgst string) (api.FindEntry, bool) {
	i, ok := m.byDigest[dgst]
	if repo != "" {
		i, ok = m.byKey[[2]string{repo, dgst}]
	}
	if !ok {
		return api.FindEntry{}, false
	}
	return m.list[i], true
}

func (m *memEntries) InRepository(repo string) (api.FindEntry, bool) {
	i, ok := m.byRepo[repo]
	if !ok {
		return api.FindEntry{}, false
	}
	return m.list[i], true
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
