// Package publish builds catalog images and publishes them into a registry:
// Publish for one image from a directory or a layer file (catalogd publish),
// Seed for the base OS images and the application images of the reference
// documentation (catalogd seed).
//
// An image is an OCI image manifest whose config has os "windows", an
// os.version and architecture "amd64", and whose annotations carry the
// catalog's metadata (catalog/annotations.go). A child image lists its
// parent's layers before its own, so any OCI client pulls a complete image.
//
// Layers are streamed: tar -> diff_id hash -> gzip -> registry, through a
// pipe, so memory stays flat whatever the layer size.
package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/catalog/model"
	"github.com/containerprovider/containerprovider/catalog/signing"
)

// Spec describes an image to publish.
type Spec struct {
	// Name is the display name, e.g. "NanoServer" or "microsoft/iis". It
	// must not hold the wildcards * and ?, nor ':' or '@'.
	Name string
	// Repository is the OCI repository; default: Name in lower case. It
	// must be a valid OCI repository name (model.ValidateName).
	Repository string
	// Version is normalised to four parts ("1.0" -> "1.0.0.0"); it is also
	// the tag.
	Version string
	// Publisher is normalised to "CN=<publisher>".
	Publisher   string
	Description string
	// Parent names the image this one is built on: a display name or a
	// repository, with an optional ":version" (without one, the latest
	// version in the catalog). Empty for a base OS image.
	Parent string
	// Created is the image's creation time, and the mtime of every entry
	// of a packed directory; default: now. It is kept to the second.
	Created time.Time
	// Layer is the image's own layer.
	Layer Layer
	// CreatedBy is the history text of the layer; default
	// "Apply image <version>".
	CreatedBy string
}

// Limits on the text fields of a Spec.
const (
	MaxNameLength        = 128
	MaxDescriptionLength = 4096
)

// Compression selects how Publish compresses a layer it packs (a directory
// or generated content). Layer files are always used as they are.
type Compression int

const (
	// CompressionGzip compresses with gzip, deterministically: no file
	// name and no mtime in the header. It is the default.
	CompressionGzip Compression = iota
	// CompressionNone stores the tar as it is: the blob is exactly the
	// layer bytes.
	CompressionNone
)

func (c Compression) String() string {
	switch c {
	case CompressionGzip:
		return "gzip"
	case CompressionNone:
		return "none"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// ParseCompression parses "gzip" or "none" (and "" as gzip).
func ParseCompression(s string) (Compression, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "gzip":
		return CompressionGzip, nil
	case "none":
		return CompressionNone, nil
	}
	return 0, fmt.Errorf("compression %q: want gzip or none: %w", s, errdefs.ErrInvalidArgument)
}

type options struct {
	compression Compression
	latest      bool
	parent      *parentImage // resolved already (Seed)
	baseHost    string
	signer      *signing.Signer
}

// Opt sets an option of Publish.
type Opt func(*options)

// WithCompression sets the compression of packed layers (default gzip).
func WithCompression(c Compression) Opt { return func(o *options) { o.compression = c } }

// WithLatest also tags the image "latest".
func WithLatest() Opt { return func(o *options) { o.latest = true } }

func withParent(p *parentImage) Opt { return func(o *options) { o.parent = p } }

// WithBaseHost names the registry host that clients reach the catalog by,
// e.g. "catalog.example.com" or "127.0.0.1:5000": a child's
// org.opencontainers.image.base.name is then the fully qualified
// "host/repo:version", which tools such as regctl image check-base look up
// there rather than on Docker Hub. Without it base.name is "repo:version",
// which readers of this catalog resolve by base.digest. The host is part
// of the manifest, so it changes the child's digest.
func WithBaseHost(host string) Opt { return func(o *options) { o.baseHost = host } }

// WithSigner signs the image once it is published (see Sign), whether or
// not it was written this time; the payload names the repository with the
// base host in front, when there is one.
func WithSigner(s *signing.Signer) Opt { return func(o *options) { o.signer = s } }

// CheckBaseHost checks a host for WithBaseHost: a registry host, with an
// optional port, and nothing else (no scheme, no path).
func CheckBaseHost(host string) error {
	u, err := url.Parse("//" + host)
	if err != nil || host == "" || u.Host != host || u.User != nil || strings.ContainsAny(host, "/?#@ ") {
		return fmt.Errorf("base host %q: want a registry host such as catalog.example.com or 127.0.0.1:5000: %w", host, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Publish builds the image that spec describes and publishes it into t,
// tagged with its version (and "latest" with WithLatest), and returns the
// manifest record.
//
// Every field is checked before anything is written: a bad name, version,
// publisher or description is an errdefs.ErrInvalidArgument error, a
// missing parent or layer path an errdefs.ErrNotFound error, each naming
// the field. A layer that turns out to be unreadable half-way leaves at most
// an unreferenced blob, never a manifest or a tag.
//
// Publishing is idempotent: when the version's tag already points at the
// manifest that would be published, nothing is written (the layer is only
// hashed, not uploaded) and the existing record is returned, Pushed
// unchanged. A tag that points at another manifest is moved.
func Publish(ctx context.Context, t Target, spec Spec, opts ...Opt) (model.ManifestRecord, error) {
	out, err := publish(ctx, t, spec, opts...)
	return out.record, err
}

// outcome is what publish did.
type outcome struct {
	record  model.ManifestRecord
	written bool // a tag was written
}

// plan is a checked and normalised Spec.
type plan struct {
	name, repo, version, publisher, description, createdBy string
	created                                                time.Time
	src                                                    layerSource
}

func check(spec Spec) (plan, error) {
	var p plan
	p.name = strings.TrimSpace(spec.Name)
	switch {
	case p.name == "":
		return p, fmt.Errorf("name: empty: %w", errdefs.ErrInvalidArgument)
	case len(p.name) > MaxNameLength:
		return p, fmt.Errorf("name %q: longer than %d bytes: %w", p.name, MaxNameLength, errdefs.ErrInvalidArgument)
	case strings.ContainsAny(p.name, "*?:@"):
		return p, fmt.Errorf("name %q: must not contain *, ?, : or @: %w", p.name, errdefs.ErrInvalidArgument)
	case strings.IndexFunc(p.name, unicode.IsControl) >= 0:
		return p, fmt.Errorf("name %q: control character: %w", p.name, errdefs.ErrInvalidArgument)
	}

	p.repo = strings.TrimSpace(spec.Repository)
	if p.repo == "" {
		p.repo = strings.ToLower(p.name)
	}
	if err := model.ValidateName(p.repo); err != nil {
		return p, err
	}

	var err error
	if p.version, err = find.NormalizeVersion(spec.Version); err != nil {
		return p, err
	}
	if p.publisher, err = find.NormalizePublisher(spec.Publisher); err != nil {
		return p, err
	}

	p.description = strings.TrimSpace(spec.Description)
	if len(p.description) > MaxDescriptionLength {
		return p, fmt.Errorf("description: longer than %d bytes: %w", MaxDescriptionLength, errdefs.ErrInvalidArgument)
	}
	if strings.IndexFunc(p.description, func(r rune) bool {
		return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t'
	}) >= 0 {
		return p, fmt.Errorf("description: control character: %w", errdefs.ErrInvalidArgument)
	}

	p.created = spec.Created
	if p.created.IsZero() {
		p.created = time.Now()
	}
	p.created = p.created.UTC().Truncate(time.Second)

	p.createdBy = strings.TrimSpace(spec.CreatedBy)
	if p.createdBy == "" {
		p.createdBy = "Apply image " + p.version
	}

	if p.src, err = resolveLayer(spec.Layer); err != nil {
		return p, err
	}
	return p, nil
}

func resolveLayer(l Layer) (layerSource, error) {
	switch src := l.src.(type) {
	case nil:
		return nil, fmt.Errorf("layer: missing: %w", errdefs.ErrInvalidArgument)
	case pathSource:
		return src.resolve()
	default:
		if err := src.check(); err != nil {
			return nil, err
		}
		return src, nil
	}
}

func publish(ctx context.Context, t Target, spec Spec, opts ...Opt) (outcome, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.compression != CompressionGzip && o.compression != CompressionNone {
		return outcome{}, fmt.Errorf("compression %v: %w", o.compression, errdefs.ErrInvalidArgument)
	}
	if o.baseHost != "" {
		if err := CheckBaseHost(o.baseHost); err != nil {
			return outcome{}, err
		}
	}
	p, err := check(spec)
	if err != nil {
		return outcome{}, err
	}
	parent := o.parent
	if parent == nil && strings.TrimSpace(spec.Parent) != "" {
		if parent, err = resolveParent(ctx, t, spec.Parent); err != nil {
			return outcome{}, err
		}
	}

	existing, err := t.ResolveManifest(ctx, p.repo, p.version)
	exists := err == nil
	if err != nil && !errdefs.IsNotFound(err) {
		return outcome{}, fmt.Errorf("image %s:%s: %w", p.repo, p.version, err)
	}

	layer, err := publishLayer(ctx, t, p, o.compression, exists)
	if err != nil {
		return outcome{}, err
	}

	img := buildImage(p, parent, layer, o.baseHost)
	config, err := json.Marshal(img.config)
	if err != nil {
		return outcome{}, fmt.Errorf("image %s:%s: config: %w", p.repo, p.version, err)
	}
	img.manifest.Config = ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageConfig,
		Digest:    digest.FromBytes(config),
		Size:      int64(len(config)),
	}
	manifest, err := json.Marshal(img.manifest)
	if err != nil {
		return outcome{}, fmt.Errorf("image %s:%s: manifest: %w", p.repo, p.version, err)
	}
	mdgst := digest.FromBytes(manifest)

	out := outcome{record: existing}
	if !exists || existing.Digest != mdgst {
		if parent != nil {
			if err := mountParent(ctx, t, p.repo, parent); err != nil {
				return outcome{}, err
			}
		}
		if err := putBlobOnce(ctx, t, p.repo, img.manifest.Config.Digest, config); err != nil {
			return outcome{}, fmt.Errorf("image %s:%s: config: %w", p.repo, p.version, err)
		}
		rec, err := t.PutManifest(ctx, p.repo, p.version, ocispec.MediaTypeImageManifest, manifest)
		if err != nil {
			return outcome{}, fmt.Errorf("image %s:%s: %w", p.repo, p.version, err)
		}
		out = outcome{record: rec, written: true}
	}
	if o.latest {
		cur, err := t.ResolveManifest(ctx, p.repo, find.LatestTag)
		switch {
		case err == nil && cur.Digest == mdgst:
		case err == nil || errdefs.IsNotFound(err):
			if _, err := t.PutManifest(ctx, p.repo, find.LatestTag, ocispec.MediaTypeImageManifest, manifest); err != nil {
				return outcome{}, fmt.Errorf("image %s:%s: %w", p.repo, find.LatestTag, err)
			}
			out.written = true
		default:
			return outcome{}, fmt.Errorf("image %s:%s: %w", p.repo, find.LatestTag, err)
		}
	}
	if o.signer != nil {
		if _, err := Sign(ctx, t, p.repo, mdgst.String(), o.baseHost, o.signer); err != nil {
			return outcome{}, err
		}
	}
	return out, nil
}

// putBlobOnce writes a small blob unless repo has it already.
func putBlobOnce(ctx context.Context, t Target, repo string, dgst digest.Digest, b []byte) error {
	if _, err := t.StatBlob(ctx, repo, dgst); err == nil {
		return nil
	} else if !errdefs.IsNotFound(err) {
		return err
	}
	_, err := t.PutBlob(ctx, repo, dgst, int64(len(b)), bytes.NewReader(b))
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// mountParent links the parent's layers into repo, so that repo holds
// every blob its manifest lists. Non-distributable layers are not stored
// and are left alone.
func mountParent(ctx context.Context, t Target, repo string, parent *parentImage) error {
	if parent.repo == repo {
		return nil
	}
	for _, l := range parent.manifest.Layers {
		if model.IsNonDistributable(l.MediaType) {
			continue
		}
		if _, err := t.StatBlob(ctx, repo, l.Digest); err == nil {
			continue
		} else if !errdefs.IsNotFound(err) {
			return fmt.Errorf("parent layer %s: %w", l.Digest, err)
		}
		if _, err := t.MountBlob(ctx, repo, parent.repo, l.Digest); err != nil {
			return fmt.Errorf("parent layer %s from %s: %w", l.Digest, parent.repo, err)
		}
	}
	return nil
}

type image struct {
	config   ocispec.Image
	manifest ocispec.Manifest
}

// buildImage lays out the config and the manifest (without the config
// descriptor, which depends on the config bytes).
func buildImage(p plan, parent *parentImage, layer layerResult, baseHost string) image {
	created := p.created
	own := ocispec.History{Created: &created, CreatedBy: p.createdBy}
	cfg := ocispec.Image{
		Created: &created,
		Platform: ocispec.Platform{
			Architecture: "amd64",
			OS:           "windows",
			OSVersion:    p.version,
		},
		RootFS: ocispec.RootFS{Type: "layers"},
	}
	ann := map[string]string{
		find.AnnotationTitle:   p.name,
		find.AnnotationVersion: p.version,
		find.AnnotationVendor:  p.publisher,
		find.AnnotationCreated: created.Format(time.RFC3339),
	}
	if p.description != "" {
		ann[find.AnnotationDescription] = p.description
	}
	var layers []ocispec.Descriptor
	if parent != nil {
		cfg.OSVersion = parent.config.OSVersion
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, parent.config.RootFS.DiffIDs...)
		cfg.History = append(cfg.History, parent.config.History...)
		layers = append(layers, parent.manifest.Layers...)
		ann[find.AnnotationBaseName] = parent.repo + ":" + parent.version
		if baseHost != "" {
			ann[find.AnnotationBaseName] = baseHost + "/" + ann[find.AnnotationBaseName]
		}
		ann[find.AnnotationBaseDigest] = parent.digest.String()
	}
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, layer.diffID)
	cfg.History = append(cfg.History, own)
	layers = append(layers, layer.desc)
	return image{
		config: cfg,
		manifest: ocispec.Manifest{
			Versioned:   specs.Versioned{SchemaVersion: 2},
			MediaType:   ocispec.MediaTypeImageManifest,
			Layers:      layers,
			Annotations: ann,
		},
	}
}

// errSinkDone stops a layer writer whose reader has gone.
var errSinkDone = errors.New("layer consumer stopped")

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// gzipLevel is the compression level of packed layers. Changing it changes
// every seeded digest.
const gzipLevel = gzip.DefaultCompression
