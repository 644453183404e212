package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/containerprovider/containerprovider/api"
	"github.com/containerprovider/containerprovider/api/errdefs"
	"github.com/containerprovider/containerprovider/catalog/find"
	"github.com/containerprovider/containerprovider/catalog/model"
	"github.com/containerprovider/containerprovider/catalog/publish"
	"github.com/containerprovider/containerprovider/store/content"
)

// maxConfigSize bounds an image config that the provider reads whole.
const maxConfigSize = 4 << 20

// sourceLocal is the Source of an image built on this host by Commit.
const sourceLocal = "local"

// commitSpec is a checked and normalised CommitRequest.
type commitSpec struct {
	name, repo, version, publisher, description string
}

func checkCommit(req api.CommitRequest) (commitSpec, error) {
	var s commitSpec
	s.name = strings.TrimSpace(req.Name)
	if s.name == "" {
		return s, fmt.Errorf("new image: a name is required: %w", errdefs.ErrInvalidArgument)
	}
	if err := checkImageName(s.name); err != nil {
		return s, err
	}
	s.repo = strings.ToLower(s.name)
	if err := model.ValidateName(s.repo); err != nil {
		return s, fmt.Errorf("name %q: %w", s.name, err)
	}
	var err error
	if s.version, err = find.NormalizeVersion(req.Version); err != nil {
		return s, err
	}
	if s.publisher, err = find.NormalizePublisher(req.Publisher); err != nil {
		return s, err
	}
	s.description = strings.TrimSpace(req.Description)
	if err := checkDescription(s.description); err != nil {
		return s, err
	}
	return s, nil
}

// checkImageName refuses, with InvalidArgument, a display name that
// Get-ContainerImage could not show as it is or match: longer than
// publish.MaxNameLength bytes, with a wildcard or a separator of name and
// version (*, ?, : or @), or with a control character (an escape sequence
// for the terminal among them). Commit and the install from an archive
// share it.
func checkImageName(name string) error {
	switch {
	case len(name) > publish.MaxNameLength:
		return fmt.Errorf("name %q: longer than %d bytes: %w", cutName(name), publish.MaxNameLength, errdefs.ErrInvalidArgument)
	case strings.ContainsAny(name, "*?:@"):
		return fmt.Errorf("name %q: must not contain *, ?, : or @: %w", name, errdefs.ErrInvalidArgument)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("name %q: control character: %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}

// checkDescription refuses, with InvalidArgument, a description longer
// than publish.MaxDescriptionLength bytes or with a control character other
// than a line break or a tab (an escape sequence among them).
func checkDescription(d string) error {
	if len(d) > publish.MaxDescriptionLength {
		return fmt.Errorf("description: %d bytes, longer than %d: %w", len(d), publish.MaxDescriptionLength, errdefs.ErrInvalidArgument)
	}
	if strings.IndexFunc(d, func(r rune) bool {
		return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t'
	}) >= 0 {
		return fmt.Errorf("description: control character: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// checkPublisher refuses, with InvalidArgument, a publisher that
// find.NormalizePublisher would refuse (longer than find.MaxPublisherLength
// bytes, or with a control character), for a publisher that is recorded as
// it is; an empty one is no publisher.
func checkPublisher(p string) error {
	switch {
	case len(p) > find.MaxPublisherLength:
		return fmt.Errorf("publisher %q: longer than %d bytes: %w", cutName(p), find.MaxPublisherLength, errdefs.ErrInvalidArgument)
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return fmt.Errorf("publisher %q: control character: %w", p, errdefs.ErrInvalidArgument)
	}
	return nil
}

// sameImageName finds the installed image of repository repo and version
// version.
func sameImageName(recs []imageRecord, repo, version string) (imageRecord, bool) {
	for _, r := range recs {
		if r.Repository == repo && sameVersion(version, r.Version) {
			return r, true
		}
	}
	return imageRecord{}, false
}

// Commit builds a new image from a container (New-ContainerImage): the
// container's directory becomes a layer on top of the container's image,
// which becomes the new image's parent. The container stays, as with
// `docker commit`.
//
// The name is the display name; its lower case is the repository, which
// must be a valid OCI repository name. The version is padded to four parts
// ("1.0" is "1.0.0.0") and the publisher stored as "CN=<publisher>" (kept
// when it starts with "CN="); a bad name, version, publisher or
// description is InvalidArgument, an unknown container NotFound. A name
// and version already installed are Conflict unless req.Force, which
// replaces that image (its blobs are collected when nothing else uses
// them); an image that children or containers depend on is not replaced
// (*DependentsError).
//
// The layer is a deterministic tar+gzip of the directory, streamed into the
// content store; the config is the parent's with the layer's diff_id and a
// history entry added; the manifest lists the parent's layers and the new
// one, with the title, version, vendor, description, created and base
// annotations. The blobs are committed, then one transaction writes the
// record (IsOSImage false, ParentImage the container's image, Source
// "local") and the ref repository:version.
func (p *Provider) Commit(ctx context.Context, req api.CommitRequest) (api.Image, error) {
	if p.isClosing() {
		return api.Image{}, errClosed
	}
	spec, err := checkCommit(req)
	if err != nil {
		return api.Image{}, err
	}
	id, unlock, err := p.lockContainer(ctx, req.Container)
	if err != nil {
		return api.Image{}, err
	}
	defer unlock()

	var ctr containerRecord
	var parent imageRecord
	err = p.db.View(ctx, func(tx *bolt.Tx) error {
		c, ok, err := getContainer(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("no such container %q: %w", req.Container, errdefs.ErrNotFound)
		}
		ctr = c
		if parent, ok, err = getImage(tx, digest.Digest(c.Image)); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("container %s: its image %s is not installed: %w", c.Name, c.Image, errdefs.ErrFailedPrecondition)
		}
		recs, err := listImages(tx)
		if err != nil {
			return err
		}
		if old, ok := sameImageName(recs, spec.repo, spec.version); ok && !req.Force {
			return conflictError(old, commitConflictHint)
		}
		return nil
	})
	if err != nil {
		return api.Image{}, err
	}
	// The parent's blobs are read (its config) and referenced (its
	// layers) until the new record is written: a lease keeps them from a
	// collection that a concurrent removal of the parent runs.
	lease, err := p.lease(ctx, "commit", digestsOf(parent.blobs()))
	if err != nil {
		return api.Image{}, storageError(err, p.root, "the image of container "+ctr.Name)
	}
	// A failed commit may leave blobs that nothing references, and a
	// replacing one the blobs of the image it replaced: the release then
	// collects them.
	collect := true
	defer func() { lease.release(ctx, collect) }()
	if err := p.checkBlobs(ctx, parent); err != nil {
		return api.Image{}, err
	}
	parentConfig, err := p.readConfig(ctx, parent.Config)
	if err != nil {
		return api.Image{}, fmt.Errorf("image %s: %w", parent.label(), err)
	}

	created := time.Now().UTC().Truncate(time.Second)
	ref := "commit-" + newJobID()
	w, err := p.cs.Writer(ctx, ref)
	if err != nil {
		return api.Image{}, err
	}
	committed := false
	defer func() {
		if !committed {
			_ = w.Close()
			if err := p.cs.Abort(context.WithoutCancel(ctx), ref); err != nil && !errdefs.IsNotFound(err) {
				p.log.WithError(err).WithField("ref", ref).Warn("ingest of a failed commit not removed")
			}
		}
	}()
	layer, err := publish.PackDir(ctx, filepath.Join(p.containerPath(id), rootfsDir), created, publish.CompressionGzip,
		func(r io.Reader) (digest.Digest, int64, error) {
			buf := p.buffer()
			defer p.releaseBuffer(buf)
			if _, err := io.CopyBuffer(w, struct{ io.Reader }{r}, *buf); err != nil {
				return "", 0, err
			}
			return w.Digest(), w.Offset(), nil
		})
	if err != nil {
		return api.Image{}, fmt.Errorf("container %s: %w", ctr.Name, storageError(err, p.root, "the layer of container "+ctr.Name))
	}

	cfg := parentConfig
	cfg.Created = &created
	if cfg.RootFS.Type == "" {
		cfg.RootFS.Type = "layers"
	}
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, layer.DiffID)
	cfg.History = append(cfg.History, ocispec.History{
		Created:   &created,
		CreatedBy: "New-ContainerImage -Container " + ctr.Name,
		Comment:   spec.name + " " + spec.version,
	})
	cfgBytes, err := json.Marshal(cfg)
	if err != nil {
		return api.Image{}, fmt.Errorf("new image %s: config: %w", spec.name, err)
	}
	ann := map[string]string{
		find.AnnotationTitle:      spec.name,
		find.AnnotationVersion:    spec.version,
		find.AnnotationVendor:     spec.publisher,
		find.AnnotationCreated:    created.Format(time.RFC3339),
		find.AnnotationBaseName:   p.qualifiedName(ctx, parent),
		find.AnnotationBaseDigest: parent.Digest.String(),
	}
	if spec.description != "" {
		ann[find.AnnotationDescription] = spec.description
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageConfig,
			Digest:    digest.FromBytes(cfgBytes),
			Size:      int64(len(cfgBytes)),
		},
		Layers:      append(append([]ocispec.Descriptor{}, parent.Layers...), layer.Descriptor),
		Annotations: ann,
	}
	mBytes, err := json.Marshal(m)
	if err != nil {
		return api.Image{}, fmt.Errorf("new image %s: manifest: %w", spec.name, err)
	}
	mDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mBytes), Size: int64(len(mBytes))}
	rec := imageRecord{
		Name:        spec.name,
		Repository:  spec.repo,
		Publisher:   spec.publisher,
		Version:     spec.version,
		Description: spec.description,
		IsOSImage:   false,
		Parent: &api.ParentRef{
			Name:      parent.Name,
			Version:   parent.Version,
			Digest:    parent.Digest.String(),
			Publisher: parent.Publisher,
		},
		Created:   created,
		Installed: time.Now().UTC(),
		Digest:    mDesc.Digest,
		Source:    sourceLocal,
		OSVersion: parent.OSVersion,
		Manifest:  mDesc,
		Config:    m.Config,
		Layers:    m.Layers,
	}
	rec.Size = mDesc.Size + m.Config.Size
	for _, l := range m.Layers {
		rec.Size += l.Size
	}

	// From the first commit of a blob to the record, the lease keeps the
	// new blobs too: nothing references them until the record is written.
	if err := lease.add(ctx, []digest.Digest{layer.Descriptor.Digest, m.Config.Digest, mDesc.Digest}); err != nil {
		return api.Image{}, storageError(err, p.root, "the image of container "+ctr.Name)
	}
	out, replaced, err := p.commitImage(ctx, w, layer.Descriptor, []blobBytes{{m.Config, cfgBytes}, {mDesc, mBytes}}, rec, parent, req.Force)
	committed = true
	if err != nil {
		return api.Image{}, storageError(err, p.root, "the image of container "+ctr.Name)
	}
	collect = replaced
	p.log.WithField("image", rec.label()).WithField("digest", rec.Digest).WithField("container", ctr.Name).Info("container committed")
	return out, nil
}

// blobBytes is a small blob held in memory, and its descriptor.
type blobBytes struct {
	desc  ocispec.Descriptor
	bytes []byte
}

// commitImage commits the layer written to w and the small blobs, then
// writes rec and its ref in one transaction, checking that the parent is
// still installed and that the name and version are free (or, with force,
// replacing the image that has them, unless something depends on it).
// replaced reports a replacement. The caller leases every blob.
func (p *Provider) commitImage(ctx context.Context, w content.Writer, layer ocispec.Descriptor, small []blobBytes,
	rec imageRecord, parent imageRecord, force bool) (out api.Image, replaced bool, err error) {
	if err := w.Commit(ctx, layer.Size, layer.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return out, false, fmt.Errorf("new image %s: layer: %w", rec.Name, err)
	}
	for _, b := range small {
		if _, err := content.WriteBlob(ctx, p.cs, "commit-"+b.desc.Digest.String(), bytes.NewReader(b.bytes), b.desc.Size, b.desc.Digest); err != nil {
			return out, false, fmt.Errorf("new image %s: %w", rec.Name, err)
		}
	}
	err = p.db.Update(ctx, func(tx *bolt.Tx) error {
		if _, ok, err := getImage(tx, parent.Digest); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("parent image %s was removed: %w", parent.label(), errdefs.ErrFailedPrecondition)
		}
		recs, err := listImages(tx)
		if err != nil {
			return err
		}
		if old, ok := sameImageName(recs, rec.Repository, rec.Version); ok {
			if !force {
				return conflictError(old, commitConflictHint)
			}
			if old.Digest != rec.Digest {
				containers, err := listContainers(tx)
				if err != nil {
					return err
				}
				if derr := dependents([]imageRecord{old}, recs, containers); derr != nil {
					return derr
				}
				if err := deleteImage(tx, old); err != nil {
					return err
				}
				replaced = true
			}
		}
		if err := putImage(tx, rec); err != nil {
			return err
		}
		out = rec.image(refsOf(tx, rec.Digest))
		return nil
	})
	return out, replaced, err
}

// digestsOf lists the digests of descs.
func digestsOf(descs []ocispec.Descriptor) []digest.Digest {
	out := make([]digest.Digest, len(descs))
	for i, d := range descs {
		out[i] = d.Digest
	}
	return out
}

// checkBlobs makes sure that the blobs of rec are committed, once they are
// leased: an image removed (and collected) between the lookup of its
// record and the lease is NotFound.
func (p *Provider) checkBlobs(ctx context.Context, rec imageRecord) error {
	for _, d := range rec.blobs() {
		if _, err := p.cs.Info(ctx, d.Digest); err != nil {
			if errdefs.IsNotFound(err) {
				return fmt.Errorf("image %s was removed: blob %s is gone: %w", rec.label(), d.Digest, errdefs.ErrNotFound)
			}
			return err
		}
	}
	return nil
}

// conflictError refuses a name and version that an installed image has;
// hint says what to do about it.
func conflictError(old imageRecord, hint string) error {
	return fmt.Errorf("image %s %s is already installed (%s): %s: %w",
		old.Name, old.Version, old.Digest, hint, errdefs.ErrConflict)
}

const commitConflictHint = "choose another name or version, or force to replace it"

// readConfig reads and decodes an image config blob, at most maxConfigSize
// bytes.
func (p *Provider) readConfig(ctx context.Context, desc ocispec.Descriptor) (ocispec.Image, error) {
	var cfg ocispec.Image
	if desc.Size > maxConfigSize {
		return cfg, fmt.Errorf("config %s: %d bytes, more than %d: %w", desc.Digest, desc.Size, maxConfigSize, errdefs.ErrTooLarge)
	}
	ra, err := p.cs.ReaderAt(ctx, desc.Digest)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	b, err := io.ReadAll(io.LimitReader(content.NewSectionReader(ra), maxConfigSize+1))
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", desc.Digest, err)
	}
	if int64(len(b)) > maxConfigSize {
		return cfg, fmt.Errorf("config %s: more than %d bytes: %w", desc.Digest, maxConfigSize, errdefs.ErrTooLarge)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %v: %w", desc.Digest, err, errdefs.ErrFailedPrecondition)
	}
	return cfg, nil
}
