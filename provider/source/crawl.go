package source

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog"
	"github.com/containerprovider/containerprovider/catalog/find"
)

// crawl reads the catalog through the plain protocol (see Catalog).
func (c *Client) crawl(ctx context.Context) ([]api.FindEntry, error) {
	repos, truncated, err := c.list(ctx, c.endpoint("/v2/_catalog", nil), catalogScope, maxListItems)
	if err != nil {
		return nil, fmt.Errorf("source %s: catalog: %w", c.name, err)
	}
	if truncated {
		c.log.Warnf("catalog truncated to its first %d repositories", maxListItems)
	}

	// Tags, repository by repository, within one budget.
	type repoTags struct {
		tags []string
		err  error
	}
	lists := make([]repoTags, len(repos))
	var budget atomic.Int64
	budget.Store(maxListItems)
	var tagsTruncated atomic.Bool
	err = parallel(ctx, len(repos), crawlConcurrency, func(ctx context.Context, i int) error {
		repo := repos[i]
		if catalog.ValidateName(repo) != nil {
			lists[i].err = fmt.Errorf("repository name %q: %w", repo, errdefs.ErrInvalidArgument)
			return nil
		}
		left := budget.Load()
		if left <= 0 {
			tagsTruncated.Store(true)
			return nil
		}
		tags, truncated, err := c.list(ctx, c.endpoint("/v2/"+repo+"/tags/list", nil), pullScope(repo), int(left))
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			lists[i].err = err
			c.log.WithError(err).WithField("repository", repo).Debug("skipping a repository whose tags cannot be listed")
			return nil
		}
		if truncated || budget.Add(-int64(len(tags))) < 0 {
			tagsTruncated.Store(true)
		}
		lists[i].tags = tags
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("source %s: catalog: %w", c.name, err)
	}

	type job struct{ repo, tag string }
	var jobs []job
	var firstRepoErr error
	failedRepos := 0
	for i, l := range lists {
		if l.err != nil {
			failedRepos++
			if firstRepoErr == nil {
				firstRepoErr = fmt.Errorf("repository %s: tags: %w", repos[i], l.err)
			}
			continue
		}
		for _, t := range l.tags {
			if len(jobs) >= maxListItems {
				tagsTruncated.Store(true)
				break
			}
			jobs = append(jobs, job{repos[i], t})
		}
	}
	if failedRepos > 0 && failedRepos == len(repos) {
		return nil, fmt.Errorf("source %s: catalog: no repository could be read: %w", c.name, firstRepoErr)
	}
	if tagsTruncated.Load() {
		c.log.Warnf("catalog truncated to its first %d tags", maxListItems)
	}

	// Manifests, and the os.version of their configs.
	results := make([]*find.Tagged, len(jobs))
	read := make([]bool, len(jobs)) // the manifest was read, image or not
	errs := make([]error, len(jobs))
	configs := &configCache{versions: map[digest.Digest]string{}}
	err = parallel(ctx, len(jobs), crawlConcurrency, func(ctx context.Context, i int) error {
		j := jobs[i]
		rec, err := c.manifestRecord(ctx, j.repo, j.tag, configs)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			errs[i] = err
			c.log.WithError(err).WithFields(logrus.Fields{"repository": j.repo, "tag": j.tag}).
				Debug("skipping a tag whose manifest cannot be read")
			return nil
		}
		read[i] = true
		if rec.Kind != catalog.KindImage {
			return nil // a signature, an attestation, an SBOM or another artifact
		}
		results[i] = &find.Tagged{Tag: j.tag, Manifest: rec.FindManifest(j.repo, nil)}
		return nil
	})
	if err == nil {
		// A config read that the context's end cut short leaves no error.
		err = ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("source %s: catalog: %w", c.name, err)
	}
	var tms []find.Tagged
	var firstErr error
	for i, r := range results {
		if r != nil {
			tms = append(tms, *r)
		} else if !read[i] && firstErr == nil {
			firstErr = errs[i]
		}
	}
	if firstErr != nil && !slices.Contains(read, true) {
		return nil, fmt.Errorf("source %s: catalog: no manifest could be read: %w", c.name, firstErr)
	}
	// catalogd lists by repository then tag, in byte order: the same
	// order gives find.Index the same ties.
	slices.SortFunc(tms, func(a, b find.Tagged) int {
		if n := strings.Compare(a.Manifest.Repository, b.Manifest.Repository); n != 0 {
			return n
		}
		return strings.Compare(a.Tag, b.Tag)
	})
	return find.Index(find.Group(tms)), nil
}

// list reads a paginated list: the repositories of _catalog or the tags of
// tags/list, following the Link headers, at most limit items (truncated
// reports more) and maxListPages pages.
// A Link to another host is refused.
func (c *Client) list(ctx context.Context, u *url.URL, scope string, limit int) (items []string, truncated bool, err error) {
	q := u.Query()
	q.Set("n", strconv.Itoa(c.pageSize))
	u.RawQuery = q.Encode()
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page >= maxListPages {
			return items, true, nil
		}
		seen[u.String()] = true
		var body struct {
			Repositories []string `json:"repositories"`
			Tags         []string `json:"tags"`
		}
		next, err := c.getJSON(ctx, u, scope, &body)
		if err != nil {
			return nil, false, err
		}
		for _, it := range append(body.Repositories, body.Tags...) {
			if len(items) >= limit {
				return items, true, nil
			}
			items = append(items, it)
		}
		if next == "" {
			return items, false, nil
		}
		nu, err := u.Parse(next)
		if err != nil || nu.Scheme != u.Scheme || nu.Host != u.Host {
			return nil, false, fmt.Errorf("%s: Link to the next page %q: not on the same registry: %w",
				u.Redacted(), next, errdefs.ErrUnavailable)
		}
		if seen[nu.String()] {
			return items, false, nil
		}
		u = nu
	}
}

// getJSON reads the JSON body of a GET of u into v, and returns the target
// of its Link rel="next" header, if any.
func (c *Client) getJSON(ctx context.Context, u *url.URL, scope string, v any) (string, error) {
	resp, err := c.get(ctx, u, scope, http.Header{"Accept": {"application/json"}})
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", statusError(resp)
	}
	body, err := readLimited(resp.Body, maxListBody)
	_ = resp.Body.Close()
	if err != nil {
		if errdefs.IsTooLarge(err) {
			return "", err
		}
		return "", transportError(ctx, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return "", fmt.Errorf("%s: bad JSON: %v: %w", u.Path, err, errdefs.ErrUnavailable)
	}
	return nextLink(resp.Header.Values("Link")), nil
}

// linkRegexp matches one link of a Link header (RFC 8288): the target and
// its parameters.
var linkRegexp = regexp.MustCompile(`<([^>]*)>((?:\s*;\s*[^;,<]*)*)`)

var relNextRegexp = regexp.MustCompile(`(?i);\s*rel\s*=\s*"?([^";,]*)"?`)

// nextLink returns the target of the rel="next" link of Link headers.
func nextLink(values []string) string {
	for _, v := range values {
		for _, m := range linkRegexp.FindAllStringSubmatch(v, -1) {
			for _, rel := range relNextRegexp.FindAllStringSubmatch(m[2], -1) {
				if slices.Contains(strings.Fields(strings.ToLower(rel[1])), "next") {
					return m[1]
				}
			}
		}
	}
	return ""
}

// manifestFields are the fields of a manifest that a catalog record needs.
type manifestFields struct {
	ArtifactType string               `json:"artifactType"`
	Config       *ocispec.Descriptor  `json:"config"`
	Layers       []ocispec.Descriptor `json:"layers"`
	Manifests    []ocispec.Descriptor `json:"manifests"`
	Subject      *ocispec.Descriptor  `json:"subject"`
	Annotations  map[string]string    `json:"annotations"`
}

// manifestRecord reads the manifest repo:tag into the record catalogd
// would keep of it: ContentSize is the manifest's size plus its config's
// and layers' (an index's, plus its manifests'), and OSVersion the
// os.version of an image config.
func (c *Client) manifestRecord(ctx context.Context, repo, tag string, configs *configCache) (catalog.ManifestRecord, error) {
	desc, body, err := c.Manifest(ctx, repo, tag)
	if err != nil {
		return catalog.ManifestRecord{}, err
	}
	var f manifestFields
	if err := json.Unmarshal(body, &f); err != nil {
		return catalog.ManifestRecord{}, fmt.Errorf("source %s: repository %s: manifest %s: %v: %w",
			c.name, repo, tag, err, errdefs.ErrInvalidArgument)
	}
	rec := catalog.ManifestRecord{
		Digest:       desc.Digest,
		MediaType:    desc.MediaType,
		Size:         desc.Size,
		ArtifactType: f.ArtifactType,
		Annotations:  f.Annotations,
		ContentSize:  desc.Size,
	}
	if f.Subject != nil {
		rec.Subject = f.Subject.Digest
	}
	var config string
	var layers []string
	if f.Config != nil {
		config = f.Config.MediaType
	}
	for _, l := range f.Layers {
		layers = append(layers, l.MediaType)
	}
	rec.Kind = catalog.KindArtifact
	if find.IsImage(desc.MediaType, f.ArtifactType, config, layers, f.Subject != nil) {
		rec.Kind = catalog.KindImage
	}
	switch desc.MediaType {
	case ocispec.MediaTypeImageManifest, catalog.MediaTypeDockerManifest:
		if f.Config != nil {
			rec.ContentSize += f.Config.Size
			if f.Config.MediaType == ocispec.MediaTypeImageConfig || f.Config.MediaType == catalog.MediaTypeDockerConfig {
				rec.OSVersion = configs.osVersion(ctx, c, repo, *f.Config)
			}
		}
		for _, l := range f.Layers {
			rec.ContentSize += l.Size
		}
	case ocispec.MediaTypeImageIndex, catalog.MediaTypeDockerManifestList:
		for _, m := range f.Manifests {
			rec.ContentSize += m.Size
		}
	}
	return rec, nil
}

// configCache remembers the os.version of the configs a crawl read, since
// several tags often share an image.
type configCache struct {
	mu       sync.Mutex
	versions map[digest.Digest]string
}

// osVersion returns the os.version of config, or "" when it cannot be read
// (too large, unreadable, not matching its digest, not JSON), like
// catalogd.
func (cc *configCache) osVersion(ctx context.Context, c *Client, repo string, config ocispec.Descriptor) string {
	if config.Size > maxConfigSize {
		return ""
	}
	if _, err := catalog.ParseDigest(string(config.Digest)); err != nil {
		return ""
	}
	cc.mu.Lock()
	v, ok := cc.versions[config.Digest]
	cc.mu.Unlock()
	if ok {
		return v
	}
	v, err := c.readOSVersion(ctx, repo, config.Digest)
	if err != nil {
		c.log.WithError(err).WithField("repository", repo).Debug("no os.version from an image config")
		if ctx.Err() != nil {
			return ""
		}
	}
	cc.mu.Lock()
	cc.versions[config.Digest] = v
	cc.mu.Unlock()
	return v
}

func (c *Client) readOSVersion(ctx context.Context, repo string, dgst digest.Digest) (string, error) {
	rc, err := c.Blob(ctx, repo, dgst, 0)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := readLimited(rc, maxConfigSize)
	if err != nil {
		return "", fmt.Errorf("config %s: %w", dgst, err)
	}
	if got := dgst.Algorithm().FromBytes(b); got != dgst {
		return "", fmt.Errorf("config %s: the bytes have digest %s: %w", dgst, got, errdefs.ErrFailedPrecondition)
	}
	var cfg struct {
		OSVersion string `json:"os.version"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", fmt.Errorf("config %s: %v: %w", dgst, err, errdefs.ErrInvalidArgument)
	}
	return cfg.OSVersion, nil
}
