package source

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/catalog/model"
	"github.com/containerprovider/containerprovider/provider/mirror"
)

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

// readManifest reads the manifest repo:ref into what Find reads of it:
// Size is the manifest's size plus its config's and layers' (an index's,
// plus its manifests'), OSVersion the os.version of an image config and
// Created its created time, which the created annotation overrides.
func (c *Client) readManifest(ctx context.Context, repo, ref string, configs *configCache) (mirror.Manifest, error) {
	desc, body, err := c.Manifest(ctx, repo, ref)
	if err != nil {
		return mirror.Manifest{}, err
	}
	var f manifestFields
	if err := json.Unmarshal(body, &f); err != nil {
		return mirror.Manifest{}, fmt.Errorf("source %s: repository %s: manifest %s: %v: %w",
			c.name, repo, ref, err, errdefs.ErrInvalidArgument)
	}
	mf := mirror.Manifest{Digest: desc.Digest.String(), Annotations: f.Annotations, Size: desc.Size}
	var config string
	var layers []string
	if f.Config != nil {
		config = f.Config.MediaType
	}
	for _, l := range f.Layers {
		layers = append(layers, l.MediaType)
	}
	mf.Image = find.IsImage(desc.MediaType, f.ArtifactType, config, layers, f.Subject != nil)
	switch desc.MediaType {
	case ocispec.MediaTypeImageManifest, find.MediaTypeDockerManifest:
		if f.Config != nil {
			mf.Size += f.Config.Size
			if mf.Image {
				ci := configs.get(ctx, c, repo, *f.Config)
				mf.OSVersion, mf.Created = ci.OSVersion, ci.Created
			}
		}
		for _, l := range f.Layers {
			mf.Size += l.Size
		}
	case ocispec.MediaTypeImageIndex, find.MediaTypeDockerManifestList:
		for _, m := range f.Manifests {
			mf.Size += m.Size
		}
	}
	return mf, nil
}

// configInfo is what Find reads of an image config.
type configInfo struct {
	OSVersion string    `json:"os.version"`
	Created   time.Time `json:"created"`
}

// configCache remembers the configs a crawl read, since several tags
// often share an image.
type configCache struct {
	mu       sync.Mutex
	versions map[string]configInfo
}

// get returns what config says, or nothing when it cannot be read (too
// large, unreadable, not matching its digest, not JSON), like catalogd.
func (cc *configCache) get(ctx context.Context, c *Client, repo string, config ocispec.Descriptor) configInfo {
	if config.Size > maxConfigSize {
		return configInfo{}
	}
	if _, err := model.ParseDigest(string(config.Digest)); err != nil {
		return configInfo{}
	}
	cc.mu.Lock()
	v, ok := cc.versions[config.Digest.String()]
	cc.mu.Unlock()
	if ok {
		return v
	}
	v, err := c.readConfig(ctx, repo, config.Digest)
	if err != nil {
		c.log.WithError(err).WithField("repository", repo).Debug("nothing read from an image config")
		if ctx.Err() != nil {
			return configInfo{}
		}
	}
	cc.mu.Lock()
	cc.versions[config.Digest.String()] = v
	cc.mu.Unlock()
	return v
}

// readConfig reads the image config dgst of repo, at most maxConfigSize
// bytes that must have that digest, for its os.version and created time
// (left zero when it is not an RFC 3339 string).
func (c *Client) readConfig(ctx context.Context, repo string, dgst digest.Digest) (configInfo, error) {
	rc, err := c.Blob(ctx, repo, dgst, 0)
	if err != nil {
		return configInfo{}, err
	}
	defer rc.Close()
	b, err := readLimited(rc, maxConfigSize)
	if err != nil {
		return configInfo{}, fmt.Errorf("config %s: %w", dgst, err)
	}
	if got := dgst.Algorithm().FromBytes(b); got != dgst {
		return configInfo{}, fmt.Errorf("config %s: the bytes have digest %s: %w", dgst, got, errdefs.ErrFailedPrecondition)
	}
	// created is read apart, so that a config whose created is no string
	// still gives its os.version, as catalogd reads it.
	var cfg struct {
		OSVersion string          `json:"os.version"`
		Created   json.RawMessage `json:"created"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return configInfo{}, fmt.Errorf("config %s: %v: %w", dgst, err, errdefs.ErrInvalidArgument)
	}
	ci := configInfo{OSVersion: cfg.OSVersion}
	var created string
	if json.Unmarshal(cfg.Created, &created) == nil {
		if t, err := time.Parse(time.RFC3339Nano, created); err == nil {
			ci.Created = t.UTC()
		}
	}
	return ci, nil
}
